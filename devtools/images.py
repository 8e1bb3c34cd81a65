"""Synthetic photo-like images, for tests and benchmarks that must not depend on ../shared."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def make_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, a few shapes and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    base = np.stack([xx, yy, 1 - xx * yy], axis=-1) * 200 + 25
    noise = rng.normal(0, 6, size=(height, width, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = (
            x0 + int(rng.integers(2, width // 2 + 3)),
            y0 + int(rng.integers(2, height // 2 + 3)),
        )
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x1, y1), fill=color)
    return img


def make_jpeg(size: int, seed: int = 0, quality: int = 90) -> bytes:
    """A size x size `make_photo` as JPEG bytes, as a client uploads it."""
    buf = io.BytesIO()
    make_photo(size, size, seed).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def make_phone_jpeg(width: int, height: int, orientation: int = 6, seed: int = 0) -> bytes:
    """A phone-camera-like JPEG: `make_photo` pixels stored width x height with an EXIF
    Orientation tag (6: the camera was turned, so the upright photo is height x width)."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # ExifTags.Base.Orientation
    buf = io.BytesIO()
    make_photo(width, height, seed).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()
