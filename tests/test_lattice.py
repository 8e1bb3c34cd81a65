"""The diagonal-lattice measure benchmarks/lattice.py prints for the model card."""

import numpy as np
import pytest
from PIL import Image

from benchmarks.lattice import diagonal_ratio


@pytest.fixture
def texture() -> np.ndarray:
    """Smooth random texture with no preferred direction: (H, W) in 0..255."""
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(256, 384))
    spectrum = np.fft.fft2(noise)
    fy, fx = np.fft.fftfreq(256)[:, None], np.fft.fftfreq(384)[None, :]
    smooth = np.real(np.fft.ifft2(spectrum / (np.hypot(fx, fy) + 0.01)))  # ~1/f, like a photo
    return 128 + 40 * smooth / smooth.std()


def stripes(shape: tuple[int, int], direction: str, period: int = 32) -> np.ndarray:
    y, x = np.mgrid[: shape[0], : shape[1]]
    along = {"diagonal": x + y, "vertical": x}[direction]
    return np.where(along % period < period // 2, 12.0, -12.0)  # sharp-edged bands


def to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB")


def test_a_texture_with_no_direction_scores_about_one(texture: np.ndarray) -> None:
    assert 0.8 < diagonal_ratio(to_image(texture)) < 1.25


def test_faint_diagonal_bands_raise_the_score(texture: np.ndarray) -> None:
    plain = diagonal_ratio(to_image(texture))
    banded = diagonal_ratio(to_image(texture + stripes(texture.shape, "diagonal")))
    assert banded > 1.5 * plain


def test_bands_along_an_axis_do_not(texture: np.ndarray) -> None:
    plain = diagonal_ratio(to_image(texture))
    banded = diagonal_ratio(to_image(texture + stripes(texture.shape, "vertical")))
    assert banded < 1.1 * plain
