"""build_segmenter and its SamOptions: SAM-only options reach SAM and are refused by weight-free segmenters."""

import pytest

from detseg.errors import InputError
from detseg.segmenter import BoxSegmenter, SamSegmenter
from detseg.segmenter.factory import SamOptions, build_segmenter


def test_default_options_change_nothing():
    assert SamOptions().changed() == []
    assert SamOptions().segmenter_kwargs() == {"multimask": "single", "precision": "fp32"}  # imgsz: SAM's own


def test_changed_names_each_option_as_a_user_sets_it():
    options = SamOptions(multimask="best", precision="bf16", imgsz=512)
    assert options.changed() == [("multimask", "best"), ("precision", "bf16"), ("sam_imgsz", 512)]
    assert options.segmenter_kwargs() == {"multimask": "best", "precision": "bf16", "imgsz": 512}


def test_sam_options_reach_the_sam_segmenter(mobile_sam_checkpoint):
    segmenter, note = build_segmenter(str(mobile_sam_checkpoint), "cpu", SamOptions(multimask="best", imgsz=512))
    assert isinstance(segmenter, SamSegmenter)
    assert (segmenter.imgsz, segmenter.multimask, segmenter.precision) == (512, "best", "fp32")
    assert note.endswith("at 512 px")
    default, note = build_segmenter(str(mobile_sam_checkpoint), "cpu")
    assert default.imgsz == 1024 and "px" not in note


@pytest.mark.parametrize("options, message", [
    (SamOptions(multimask="all"), "multimask 'all' is for SAM segmenters; box gives one mask per box"),
    (SamOptions(precision="bf16"), "precision 'bf16' is for SAM segmenters; box has no model"),
    (SamOptions(imgsz=512), "sam_imgsz 512 is for SAM segmenters; box has no model"),
])
def test_weight_free_segmenters_refuse_sam_options(options, message):
    with pytest.raises(InputError) as error:
        build_segmenter("box", "cpu", options)
    assert str(error.value) == message
    assert isinstance(build_segmenter("box", "cpu", SamOptions())[0], BoxSegmenter)


def test_a_bad_sam_input_size_fails_when_the_segmenter_is_built(mobile_sam_checkpoint):
    with pytest.raises(InputError, match="imgsz must be a multiple of 64"):
        build_segmenter(str(mobile_sam_checkpoint), "cpu", SamOptions(imgsz=500))


def test_a_ray_pipeline_spec_carries_the_sam_options(mobile_sam_checkpoint, tiny_weights):
    from detseg.pipeline.scale.ray_engine import PipelineSpec

    pipeline = PipelineSpec(str(tiny_weights), str(mobile_sam_checkpoint), "cpu", SamOptions(imgsz=512))()
    assert pipeline.segmenter.imgsz == 512


def test_auto_falls_back_to_grabcut_without_mobile_sam_but_never_drops_sam_options(tmp_path, monkeypatch):
    from detseg.errors import WeightsError
    from detseg.segmenter import GrabCutSegmenter

    def offline(self):
        raise WeightsError("mobile_sam.pt not found and not downloadable")

    monkeypatch.chdir(tmp_path)  # no mobile_sam.pt here
    monkeypatch.setattr(SamSegmenter, "load", offline)
    segmenter, note = build_segmenter("auto", "cpu")
    assert isinstance(segmenter, GrabCutSegmenter) and note.startswith("segmenter: GrabCut, because mobile_sam.pt")
    with pytest.raises(InputError, match="multimask 'all' is for SAM segmenters, and mobile_sam.pt is neither"):
        build_segmenter("auto", "cpu", SamOptions(multimask="all"))
    (tmp_path / "mobile_sam.pt").write_bytes(b"half a download")  # present but unreadable: the error, no fallback
    with pytest.raises(WeightsError):
        build_segmenter("auto", "cpu")
