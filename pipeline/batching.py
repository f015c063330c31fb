"""Images in batches through SAM's encoder: :meth:`Pipeline.run` with ``batch_size > 1``.

The detector still sees one image at a time; the images of a batch that have boxes are then
encoded by SAM in one call (:meth:`~detseg.segmenter.sam.SamSegmenter.embed_batch`), and each
image's boxes are decoded on its cached embedding. Frames come out in input order, exactly as
with ``batch_size=1`` (embeddings equal up to float rounding).

On a CPU a batch is no faster per image (``benchmarks/scale.py`` measures it), so ``"auto"``
is 1 there; on a GPU a batch keeps the device busy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from detseg.errors import ImageReadError, InputError
from detseg.pipeline.frame import Frame

GPU_BATCH = 8  # images per encoder call on a GPU ("auto")


def resolve_batch_size(batch_size, segmenter) -> int:
    """``"auto"`` -> 1 on a CPU or for a segmenter without a batched encoder, :data:`GPU_BATCH` on a GPU.

    Raises:
        InputError: not ``"auto"`` nor an integer >= 1.
    """
    if batch_size == "auto" or batch_size is None:
        device = getattr(segmenter, "_device", None)
        on_gpu = getattr(device, "type", str(device or "")) in ("cuda", "mps")
        return GPU_BATCH if on_gpu and callable(getattr(segmenter, "embed_batch", None)) else 1
    try:
        value = int(batch_size)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or str(value) != str(batch_size).strip():
        raise InputError(f"batch size must be 'auto' or an integer >= 1, got {batch_size!r}")
    return value


def chunks(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def run_batched(pipeline, src, items: Iterable, batch_size: int, strict: bool) -> Iterator[Frame]:
    """The frames of ``items`` (source items), processed ``batch_size`` at a time, in input order.

    Failures are reported as :meth:`Pipeline.run` reports them (a frame with ``error``), or
    raised at the failed input with ``strict``.
    """
    from detseg.errors import DetsegError
    from detseg.images import as_bgr8

    for chunk in chunks(items, batch_size):
        for item in chunk:  # the frame carries the image the pipeline saw (an array may be gray, BGRA, 16-bit)
            if not item.error:
                try:
                    item.image = as_bgr8(item.image)
                except DetsegError as e:
                    item.image, item.error = None, f"{type(e).__name__}: {e}"
        good = [item for item in chunk if not item.error]
        results = dict(zip((id(item) for item in good), pipeline.process_batch([item.image for item in good])))
        for item in chunk:
            name = item.name or src.name_of(item)
            if item.error:
                if strict:
                    raise ImageReadError(item.error)
                yield Frame(item.index, item.path, None, None, item.error, frame=item.frame, name=name)
                continue
            result = results[id(item)]
            if isinstance(result, Exception):  # only the project's checks and memory are caught
                if strict:
                    raise result
                yield Frame(item.index, item.path, item.image, None, f"{type(result).__name__}: {result}",
                            frame=item.frame, name=name)
                continue
            dets, seconds = result
            seconds["read"] = item.seconds
            yield Frame(item.index, item.path, item.image, dets, "", seconds, frame=item.frame, name=name)
