"""Pictures of evaluation and training results (matplotlib; PNG files written atomically).

No backend is forced: without a display matplotlib picks Agg by itself, and in a notebook
the inline backend shows the figures that functions return.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from detseg.atomic import atomic_write_bytes


def _figure():
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_pr_curves(evals: dict, path: str | Path) -> Path:
    """Mask precision-recall curves (all classes averaged) at IoU 0.50 and 0.75, one line per config."""
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    recall = np.linspace(0, 1, 101)
    for ax, (t, label) in zip(axes, ((0, "IoU 0.50"), (5, "IoU 0.75"))):
        for name, ev in evals.items():
            if ev is None:
                continue
            p = ev.eval["precision"][t, :, :, 0, -1]  # (R, K)
            p = np.where(p < 0, np.nan, p)
            ap = float(np.nanmean(p)) if np.isfinite(p).any() else float("nan")  # COCO's AP at this IoU
            ax.plot(recall, np.nanmean(p, axis=1), label=f"{Path(name).name} (AP {ap:.3f})")
        ax.set(title=f"mask PR, {label}", xlabel="recall", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("precision")
    return _save(fig, Path(path))


def plot_per_class_ap(report: dict, path: str | Path) -> Path:
    """Grouped bars: mask AP50:95 per class for each configuration."""
    plt = _figure()
    configs = list(report["configs"])
    classes = list(next(iter(report["configs"].values()))["segm"]["per_class"])[:30]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(classes) * max(1, len(configs)) / 2), 4))
    width = 0.8 / max(len(configs), 1)
    x = np.arange(len(classes))
    undefined = set(classes)
    for i, name in enumerate(configs):
        per_class = report["configs"][name]["segm"]["per_class"]
        values = [np.nan if per_class.get(c) is None else per_class[c] for c in classes]  # None: no ground truth
        undefined &= {c for c, v in zip(classes, values) if np.isnan(v)}
        ax.bar(x + i * width, values, width, label=Path(name).name)
    labels = [f"{c} (none in the split)" if c in undefined else c for c in classes]
    ax.set_xticks(x + width * (len(configs) - 1) / 2, labels, rotation=30, ha="right")
    ax.set(ylabel="mask AP50:95", ylim=(0, 1), title="per-class mask AP")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def plot_mask_gallery(items: list[dict], path: str | Path | None = None, columns: int = 3):
    """Ground truth (green) vs prediction (red) outlines on a crop around each instance.

    Args:
        items: from :func:`pipeline.evaluate.worst_masks`.
        path: PNG to write; None returns the figure (for notebooks).
    """
    import cv2

    plt = _figure()
    rows = max(1, (len(items) + columns - 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), items):
        image = item["image"].copy()
        for mask, colour in ((item["truth"], (0, 200, 0)), (item["predicted"], (0, 0, 230))):
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, contours, -1, colour, max(1, image.shape[0] // 200))
        ys, xs = np.nonzero(item["truth"] | item["predicted"])
        if len(ys):
            pad = 10
            image = image[max(ys.min() - pad, 0):ys.max() + pad, max(xs.min() - pad, 0):xs.max() + pad]
        ax.imshow(image[..., ::-1])
        ax.set_title(f"{item['class_name']}  IoU {item['iou']:.2f}", fontsize=9)
    fig.suptitle("worst masks: ground truth green, prediction red")
    if path is None:
        return fig
    return _save(fig, Path(path))
