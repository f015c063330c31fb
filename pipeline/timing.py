"""Throughput of a model on images in memory, timed the way the benchmarks time it.

Example:
    >>> import numpy as np
    >>> from detseg.pipeline.timing import images_per_second
    >>> images = [np.zeros((64, 64, 3), np.uint8)] * 4
    >>> images_per_second(lambda image: image.mean(), images) > 0
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def images_per_second(model: Callable[[np.ndarray], Any], images: Sequence[np.ndarray], repeats: int = 3,
                      warmup: int = 1) -> float:
    """Images/s of ``model(image)`` over ``images``: the fastest of ``repeats`` whole runs.

    The first ``warmup`` images are run once before timing (model loading, first-call allocations and kernel
    selection are not throughput). The fastest run counts, as in ``timeit``: on a shared machine the slower
    runs measure the machine's other work, not the model's.

    Args:
        model: any callable taking one HxWx3 BGR uint8 image (a ``Pipeline``, ``YoloSegModel``, ...).
        images: the images, in memory.
        repeats: whole runs over ``images``; at least 1.
        warmup: images run before timing; 0 for none.

    Returns:
        ``len(images)`` divided by the fastest run's seconds.

    Raises:
        ValueError: ``images`` is empty, ``repeats`` < 1 or ``warmup`` < 0.
    """
    if len(images) == 0:
        raise ValueError("images_per_second needs at least one image, got 0")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"expected repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for image in images[:warmup]:
        model(image)
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            model(image)
        fastest = min(fastest, time.perf_counter() - start)
    return len(images) / fastest
