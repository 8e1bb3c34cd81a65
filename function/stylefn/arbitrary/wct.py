"""The whitening-colouring transform (WCT, Li et al. 2017, "Universal Style Transfer via Feature
Transforms"), in numpy: ONNX has no eigendecomposition, so it runs between the encoder and
decoder graphs. A painting's side (`Moments.of`) is computed once per painting and cached;
the photo's side on every request.

Two places use it (painter.py): the encoder's `s4` features (144 channels, the palette and
texture of a painting; Lite0's deeper taps carry little of a painting's look, see
docs/arbitrary_style.md) and, after the decoder, each pixel's 3x3 RGB neighbourhood (27
channels: the colours and how neighbouring pixels vary together, the finest texture), where the
transformed neighbourhood's centre pixel is the result: a 3x3 filter, applied without unfolding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Eigenvalues below this fraction of the largest are raised to it: whitening divides by their
# square roots, and a near-empty direction (a dead ReLU channel, a flat painting) would blow up
# whatever noise the photo has there.
EIGEN_FLOOR = 1e-4
NEIGHBOURHOOD_FLOOR = 1e-3  # pixels are noisier than features: a 31x gain at most
NEIGHBOURHOOD_STRIDE = 2  # statistics from every 2nd position each way: 1/4 of the memory


@dataclass(frozen=True, eq=False)
class Moments:
    """Mean (C, 1) and covariance square roots of (C, N) features. The sums run in float32
    (BLAS: 2-3x faster than float64 here, and the statistics of thousands of positions lose
    nothing that matters), the eigendecomposition in float64."""

    mean: np.ndarray  # (C, 1) float32
    colour: np.ndarray  # (C, C) float32: covariance^(1/2), what colouring multiplies by
    white: np.ndarray  # (C, C) float32: covariance^(-1/2), what whitening multiplies by

    @classmethod
    def of(cls, features: np.ndarray, floor: float = EIGEN_FLOOR) -> Moments:
        f = features.astype(np.float32, copy=False)
        mean = f.mean(1, keepdims=True, dtype=np.float64).astype(np.float32)
        centred = f - mean
        cov = (centred @ centred.T).astype(np.float64) / max(1, f.shape[1] - 1)
        values, vectors = np.linalg.eigh(cov)
        values = np.maximum(values, max(floor * values.max(), 1e-12))
        root = np.sqrt(values)
        colour, white = (vectors * root) @ vectors.T, (vectors / root) @ vectors.T
        return cls(mean, colour.astype(np.float32), white.astype(np.float32))

    @property
    def nbytes(self) -> int:
        return self.mean.nbytes + self.colour.nbytes + self.white.nbytes


def transfer(content: np.ndarray, style: Moments, strength: float = 1.0) -> np.ndarray:
    """(C, H, W) features given `style`'s mean and covariance; `strength` blends with the
    original features (0: unchanged)."""
    shape = content.shape
    flat = content.reshape(shape[0], -1)
    own = Moments.of(flat)
    matrix = style.colour @ own.white  # (C, C)
    moved = matrix @ (flat - own.mean) + style.mean
    out = moved if strength == 1.0 else strength * moved + (1.0 - strength) * flat
    return out.reshape(shape).astype(np.float32, copy=False)


def neighbourhoods(rgb: np.ndarray, stride: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 -> (27, N): the 3x3 RGB neighbourhood of every `stride`-th pixel each way
    (edges reflected), as -1..1, as the loss network's `s1` tap sees them."""
    x = np.pad(rgb.astype(np.float32) / 127.5 - 1.0, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = rgb.shape[:2]
    parts = [x[i : i + h : stride, j : j + w : stride] for i in range(3) for j in range(3)]
    return np.concatenate(parts, axis=2).reshape(-1, 27).T  # (27, N)


def neighbourhood_moments(rgb: np.ndarray) -> Moments:
    return Moments.of(neighbourhoods(rgb, NEIGHBOURHOOD_STRIDE), NEIGHBOURHOOD_FLOOR)


def transfer_pixels(rgb: np.ndarray, targets: list[tuple[Moments, float]]) -> np.ndarray:
    """(H, W, 3) uint8 whose 3x3 neighbourhoods take the statistics of `targets`, weighted:
    of each transformed neighbourhood, the centre pixel. Each transform is a 3x3 filter (3
    outputs from 27 inputs) plus an offset, so a weighted blend of them is one filter too,
    applied here as nine shifted matrix products."""
    own = neighbourhood_moments(rgb)
    rows = np.zeros((3, 27), np.float32)
    offset = np.zeros(3, np.float32)
    for style, weight in targets:
        r = (style.colour @ own.white)[12:15]  # (3, 27): the centre pixel, (1, 1), is 5th of 9
        rows += weight * r
        offset += weight * (style.mean[12:15, 0] - r @ own.mean[:, 0])
    x = np.pad(rgb.astype(np.float32) / 127.5 - 1.0, ((1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = rgb.shape[:2]
    out = np.broadcast_to(offset, (h, w, 3)).copy()
    for k in range(9):
        i, j = divmod(k, 3)
        out += x[i : i + h, j : j + w] @ rows[:, 3 * k : 3 * k + 3].T
    return np.clip((out + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
