import numpy as np
import pytest

from detseg.pipeline import timing
from detseg.pipeline.timing import images_per_second


class FakeClock:
    """``time.perf_counter`` stand-in that only moves when the fake model runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeModel:
    """Costs ``cost(call_index)`` fake seconds per image; records what it was called on."""

    def __init__(self, clock, cost):
        self.clock, self.cost, self.calls = clock, cost, []

    def __call__(self, image):
        self.clock.now += self.cost(len(self.calls))
        self.calls.append(image)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", fake)
    return fake


@pytest.mark.parametrize("n", [1, 4])
def test_rate_is_images_over_the_run_time(clock, n):
    images = [np.full((8, 8, 3), i, np.uint8) for i in range(n)]
    model = FakeModel(clock, lambda i: 0.1)
    assert images_per_second(model, images, repeats=2, warmup=1) == pytest.approx(10.0)
    assert len(model.calls) == 1 + 2 * n  # the warm-up image, then every image in each run


def test_the_fastest_run_counts_and_warmup_is_not_timed(clock):
    images = [np.zeros((8, 8, 3), np.uint8)] * 2
    # warm-up call 0 costs 5 s; run 1 (calls 1-2) 0.5 s per image, run 2 (3-4) 0.25, run 3 (5-6) 1.0
    costs = [5.0, 0.5, 0.5, 0.25, 0.25, 1.0, 1.0]
    model = FakeModel(clock, lambda i: costs[i])
    assert images_per_second(model, images, repeats=3, warmup=1) == pytest.approx(4.0)


@pytest.mark.parametrize("images, repeats, warmup", [([], 3, 1), ([np.zeros((2, 2, 3), np.uint8)], 0, 1),
                                                     ([np.zeros((2, 2, 3), np.uint8)], 1, -1)])
def test_bad_arguments_are_refused(images, repeats, warmup):
    with pytest.raises(ValueError, match="got"):
        images_per_second(lambda image: None, images, repeats=repeats, warmup=warmup)
