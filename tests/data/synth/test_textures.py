"""The generator's fast elementwise helpers give the same bits as the plain numpy they replace."""

import numpy as np
import pytest

from detseg.data.synth.textures import fractal_noise, lighting, per_channel, per_pixel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (48, 33)])
def test_per_pixel_matches_broadcasting(dtype, shape):
    rng = np.random.default_rng(0)
    image = rng.random((*shape, 3)).astype(np.float32)
    field = rng.random(shape).astype(dtype)
    expanded = per_pixel(field)
    assert expanded.shape == (*shape, 3) and expanded.dtype == dtype and expanded.flags.c_contiguous
    assert np.array_equal(image * expanded, image * field[..., None])
    assert np.array_equal(per_pixel(field[..., None]), expanded)  # (H, W, 1) input too
    view = rng.random((shape[0] + 4, shape[1] + 6)).astype(dtype)[2:-2, 3:-3]  # a strided window
    assert np.array_equal(per_pixel(view), np.repeat(view[..., None], 3, axis=2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_matches_broadcasting(dtype):
    rng = np.random.default_rng(1)
    image = rng.random((9, 11, 3)).astype(np.float32)
    colour = rng.random(3).astype(dtype)
    row = per_channel(colour, 11)
    assert row.shape == (11, 3) and row.dtype == dtype
    assert np.array_equal(image * row, image * colour)


@pytest.mark.parametrize("h, w", [(640, 640), (65, 130), (1, 3)])
def test_lighting_matches_the_plain_full_frame_formula(h, w):
    light, direction = lighting(np.random.default_rng(5), h, w)
    rng = np.random.default_rng(5)
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.arange(w, dtype=np.float32)[None, :] * np.float32(np.cos(angle))
             + np.arange(h, dtype=np.float32)[:, None] * np.float32(np.sin(angle))) / max(h, w)
    grad = 1 + rng.uniform(0.05, 0.35) * (along - along.mean())
    ys, xs = np.ogrid[0:h, 0:w]
    d2 = ((xs / np.float32(w) - 0.5) ** 2 + (ys / np.float32(h) - 0.5) ** 2) * 2
    vignette = 1 - rng.uniform(0.0, 0.35) * d2
    expected = (grad * vignette * rng.uniform(0.85, 1.15)).astype(np.float32)
    assert light.dtype == np.float32 and np.array_equal(light, expected)
    assert direction == pytest.approx((np.cos(angle), np.sin(angle)))


def test_fractal_noise_matches_the_plain_sum_of_octaves():
    from detseg.data.synth.textures import value_noise

    cells = (40, 10, 3)
    noise = fractal_noise(np.random.default_rng(2), 50, 70, cells)
    rng = np.random.default_rng(2)
    expected, amp, total = np.zeros((50, 70), np.float32), 1.0, 0.0
    for cell in cells:
        expected += amp * (value_noise(rng, 50, 70, cell) - 0.5)
        total += amp
        amp *= 0.5
    assert np.array_equal(noise, expected / total * 2.0)
    with pytest.raises(ValueError, match="at least one octave"):
        fractal_noise(rng, 5, 5, ())
