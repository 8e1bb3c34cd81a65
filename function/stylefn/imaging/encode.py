"""Encoding a result: uint8 arrays to JPEG, PNG or WebP bytes, and what each format can hold."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from stylefn.imaging.errors import UnsupportedOutput

MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

# The longest side each output format can hold (WebP's is 16383 px; JPEG's 65535 is above
# MAX_IMAGE_SIDE's default).
MAX_ENCODABLE_SIDE = {"webp": 16383}


def check_encodable(width: int, height: int, fmt: str) -> None:
    """Refuse, before any work, a result the format cannot hold (a wide panorama as WebP)."""
    limit = MAX_ENCODABLE_SIDE.get(fmt)
    if limit is not None and max(width, height) > limit:
        raise UnsupportedOutput(
            f"The result would be {width}x{height}, and {fmt} holds at most {limit} px a side. "
            f"Ask for format=jpeg or png, or for max_size={limit} or less."
        )


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int) -> bytes:
    """Encode to `fmt` ("jpeg", "png" or "webp"); png/webp keep alpha, jpeg flattens onto white.

    `quality` must be 1..100 for every format (so a bad request fails the same way whatever the
    format), but only jpeg and webp use it; png is lossless.
    """
    if fmt not in MEDIA_TYPES:
        raise UnsupportedOutput(f"format must be one of jpeg, png, webp; got {fmt!r}.")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise UnsupportedOutput(f"quality must be an integer from 1 to 100; got {quality!r}.")
    if not (rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.size):
        raise ValueError(
            f"rgb must be a non-empty (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}"
        )
    if alpha is not None and not (alpha.dtype == np.uint8 and alpha.shape == rgb.shape[:2]):
        raise ValueError(
            f"alpha must be a {rgb.shape[:2]} uint8 array, got {alpha.shape} {alpha.dtype}"
        )
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if alpha is not None:
        img.putalpha(Image.fromarray(alpha))
        if fmt == "jpeg":  # no alpha channel: flatten onto white, as viewers show transparency
            img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=1)  # far faster than the default 6; latency matters
    else:
        img.save(buf, "WEBP", quality=quality)
    return buf.getvalue()
