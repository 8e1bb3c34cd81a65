"""Pixel math on the stylized result: colour preservation and strength. uint8 arrays in and out."""

from __future__ import annotations

import numpy as np
from PIL import Image


def transfer_luminance(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The original's colours with the stylized image's luminance (Gatys et al. 2016, "Preserving
    color in neural artistic style transfer"): Y from `stylized`, Cb and Cr from `original`."""
    y, _, _ = Image.fromarray(stylized).convert("YCbCr").split()
    _, cb, cr = Image.fromarray(original).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


def blend(original: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 0 gives the original back, 1 the full style."""
    if strength >= 1.0:
        return stylized
    mixed = original.astype(np.float32) * (1.0 - strength) + stylized.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
