from types import SimpleNamespace

import numpy as np

from detseg.pipeline.evaluation import plots


def test_pr_curve_legends_carry_their_ap(tmp_path, monkeypatch):
    precision = np.full((10, 101, 2, 4, 3), 0.5)
    precision[:, :, 1] = 1.0  # class 2 perfect: AP = mean(0.5, 1.0) = 0.75
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figs.append(fig) or path)
    plots.plot_pr_curves({"sam.pt": SimpleNamespace(eval={"precision": precision})}, tmp_path / "pr.png")
    texts = [t.get_text() for ax in figs[0].axes for t in ax.get_legend().get_texts()]
    assert texts == ["sam.pt (AP 0.750)", "sam.pt (AP 0.750)"]
