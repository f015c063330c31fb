"""Videos detseg writes are H.264 (browsers, Jupyter and VS Code play them) and decode frame for frame."""

import av
import cv2
import numpy as np
import pytest

from detseg.video_writer import VideoWriter, h264_available


def _probe(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return name, frames


@pytest.mark.skipif(not h264_available(), reason="PyAV without libx264")
@pytest.mark.parametrize("size", [(64, 96), (61, 95)])  # odd sides are padded to even for yuv420p
def test_frames_come_back_from_an_h264_file(tmp_path, size):
    h, w = size
    written = []
    with VideoWriter(tmp_path / "v.mp4", fps=12) as video:
        for i in range(10):
            frame = np.full((h, w, 3), 40, np.uint8)
            frame[:, : 8 * i] = (200, 60, 20)  # a bar that grows: frames differ and keep their order
            video.write(frame)
            written.append(frame)
    name, frames = _probe(tmp_path / "v.mp4")
    assert name == "h264" and video.codec == "h264" and len(frames) == 10
    for got, want in zip(frames, written):
        assert np.abs(got[:h, :w].astype(int) - want).mean() < 6  # lossy, but the same picture
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12, abs=0.01)


def test_a_frame_of_another_size_is_refused(tmp_path):
    with VideoWriter(tmp_path / "v.mp4", fps=5) as video:
        video.write(np.zeros((32, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="the video is 32x32"):
            video.write(np.zeros((32, 48, 3), np.uint8))


def test_the_generated_clip_and_a_tracked_run_write_h264(tmp_path):
    from detseg.data.synth.generate import render_clip
    from detseg.pipeline import Pipeline
    from detseg.pipeline.predict import RunOptions, run_predict
    from detseg.segmenter import BoxSegmenter
    from tests.helpers import FakeDetector

    clip = render_clip(tmp_path / "clip.mp4", frames=6, imgsz=96, seed=1)
    assert _probe(clip)[0] == "h264"
    run_predict(Pipeline(FakeDetector(), BoxSegmenter()), clip, tmp_path / "out", RunOptions(progress=False))
    name, frames = _probe(tmp_path / "out" / "annotated.mp4")
    assert name == "h264" and len(frames) == 6
