"""Image decode/encode for the API, bytes to uint8 arrays and back, and the pixel math done on
the stylized result (colour preservation, strength). Pure functions, no HTTP."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import deadlines
import numpy as np
from errors import ApiError, image_too_large, invalid_image, invalid_parameter
from image_checks import check_structure
from PIL import ExifTags, Image, ImageFile, ImageOps

# Pillow format names we open; everything else (SVG, PDF, ICO, ...) is refused up front.
# Multi-picture phone JPEGs open through the JPEG plugin and report source_format "MPO".
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

_SEND = "Send a complete JPEG, PNG, WebP, GIF, BMP or TIFF file."
_T = TypeVar("_T")
_UNRECOGNISED = (
    f"Could not decode the image: it is not a supported format or it is corrupt. {_SEND}"
)
_CORRUPT = f"Could not decode the image: it is truncated or corrupt. {_SEND}"
# Bytes Pillow hands its decoder at a time (its default is 64 kB): each read checks the decode
# deadline, and a progressive JPEG can cost seconds per 64 kB. No slower at 4 kB (measured: a
# 40 MP JPEG and PNG decode in the same time).
DECODE_BLOCK = 4096

# Pillow warns about every damaged TIFF tag or EXIF entry, each with its own text, so a file of
# 5,000 broken tags wrote 10,000 lines to stderr. A damaged image still decodes, or fails with
# invalid_image; the warnings carry nothing for the log.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value, so compare by identity
class DecodedImage:
    """An upright RGB image; `alpha` is None unless some pixel is not fully opaque."""

    rgb: np.ndarray  # (H, W, 3) uint8, C-contiguous
    alpha: np.ndarray | None  # (H, W) uint8
    source_format: str  # Pillow's format name, e.g. "JPEG", "PNG"


class _GuardedBytes(io.BytesIO):
    """The upload as the file Pillow reads, checking the decode deadline before every read: a
    decode that runs too long is abandoned between two blocks (deadlines.DeadlineExceeded)."""

    def __init__(self, data: bytes, guard: Callable[[], None]):
        super().__init__(data)
        self._guard = guard

    def read(self, size: int | None = -1) -> bytes:
        self._guard()
        return super().read(size)


def probe_pixels(data: bytes, *, max_pixels: int) -> int:
    """The image's pixel count, from its header alone, after the checks decode_image makes
    before decoding (the same ApiErrors): what admission weighs a request by."""

    def pixels() -> int:
        w, h = _open(data, max_pixels, lambda: None).size
        return w * h

    return _guarded(data, max_pixels, pixels)


def decode_image(data: bytes, *, max_pixels: int, max_side: int) -> DecodedImage:
    """Decode an upload, refusing images over `max_pixels` and shrinking ones over `max_side`.

    Every failure the client can cause becomes an ApiError: invalid_image (400) for anything
    that is not a complete image in ACCEPTED_FORMATS, image_too_large (413) for too many pixels,
    image_too_complex (422) for one whose decoding would cost out of proportion to its size
    (image_checks.py). Inside a request (deadlines.limit) a decode that outlasts
    DECODE_DEADLINE_S is abandoned with deadlines.DeadlineExceeded.
    """
    if max_pixels < 1 or max_side < 1:
        raise ValueError(f"max_pixels and max_side must be >= 1, got {max_pixels}, {max_side}")
    return _guarded(data, max_pixels, lambda: _decode(data, max_pixels, max_side))


def _guarded(data: bytes, max_pixels: int, work: Callable[[], _T]) -> _T:
    """`work` on the upload, with every exception Pillow can raise turned into the API's."""
    if not data:
        raise invalid_image(f"The image is empty. {_SEND}")
    try:
        check_structure(data)  # a few ms for 20 MB; probe_pixels and decode_image both check
        return work()
    except (ApiError, deadlines.DeadlineExceeded):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own guard (Image.MAX_IMAGE_PIXELS) fires inside Image.open, before our check
        # sees the size; its message is the only place the pixel count is reported.
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)  # whichever guard is lower
        raise image_too_large(_too_large_message(size, limit)) from e
    except Image.UnidentifiedImageError as e:
        raise invalid_image(_UNRECOGNISED) from e
    except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, ...
        raise invalid_image(_CORRUPT) from e


def _open(data: bytes, max_pixels: int, guard: Callable[[], None]) -> ImageFile.ImageFile:
    """The image with only its header read, refused if over `max_pixels`."""
    img = Image.open(_GuardedBytes(data, guard), formats=ACCEPTED_FORMATS)
    w, h = img.size
    if w * h > max_pixels:
        raise image_too_large(_too_large_message(f"{w}x{h} ({w * h:,} pixels)", max_pixels))
    img.decodermaxblock = DECODE_BLOCK
    return img


def _decode(data: bytes, max_pixels: int, max_side: int) -> DecodedImage:
    guard = deadlines.decode_guard()
    img: Image.Image = _open(data, max_pixels, guard)
    w, h = img.size
    shrink = max(w, h) > max_side
    if shrink:
        # JPEG only (no-op elsewhere): decode at 1/2..1/8 scale, keeping 2x headroom for LANCZOS.
        img.draft(None, _fit((w, h), 2 * max_side))
    img.load()  # first frame only for GIF/WebP/TIFF; raises on truncated files
    guard()  # the last block's decoding ran after the last read's check
    source_format = img.format or "unknown"
    orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    ImageOps.exif_transpose(img, in_place=True)
    img = _to_rgb_or_rgba(img)
    if shrink:
        # Target from the header size, not the draft's rounded one, so the aspect ratio is exact.
        upright = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
        # Pillow premultiplies RGBA while resizing, so transparent pixels don't bleed colour.
        img = img.resize(_fit(upright, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.array(img)  # np.array copies: writable, C-contiguous
    if img.mode == "RGB":
        return DecodedImage(pixels, None, source_format)
    alpha = np.ascontiguousarray(pixels[..., 3])
    # Fully opaque alpha carries nothing, so drop it and let callers skip the alpha path.
    return DecodedImage(
        np.ascontiguousarray(pixels[..., :3]),
        None if alpha.min() == 255 else alpha,
        source_format,
    )


def _too_large_message(size: str, max_pixels: int) -> str:
    return (
        f"The image is {size}, over the limit of {max_pixels:,} pixels. "
        "Resize it to fewer pixels and try again."
    )


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Scale (w, h) so the longest side is `max_side`, keeping the aspect ratio."""
    w, h = size
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        # Pillow's convert clips these at 255, so mid-grey 16-bit would come out white.
        # Integer modes are read as 16-bit (what PNG/TIFF store); float as 0..255.
        a = np.asarray(img, dtype=np.float32)
        if img.mode != "F":
            a /= 257.0
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    mode = "RGBA" if img.has_transparency_data else "RGB"  # LA, PA, RGBA, P/L/RGB with tRNS
    return img if img.mode == mode else img.convert(mode)


# The longest side each output format can hold (WebP's is 16383 px; JPEG's 65535 is above
# MAX_IMAGE_SIDE's default).
MAX_ENCODABLE_SIDE = {"webp": 16383}


def check_encodable(width: int, height: int, fmt: str) -> None:
    """Refuse, before any work, a result the format cannot hold (a wide panorama as WebP)."""
    limit = MAX_ENCODABLE_SIDE.get(fmt)
    if limit is not None and max(width, height) > limit:
        raise invalid_parameter(
            f"The result would be {width}x{height}, and {fmt} holds at most {limit} px a side. "
            f"Ask for format=jpeg or png, or for max_size={limit} or less."
        )


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, quality: int) -> bytes:
    """Encode to `fmt` ("jpeg", "png" or "webp"); png/webp keep alpha, jpeg flattens onto white.

    `quality` must be 1..100 for every format (so a bad request fails the same way whatever the
    format), but only jpeg and webp use it; png is lossless.
    """
    if fmt not in MEDIA_TYPES:
        raise invalid_parameter(f"format must be one of jpeg, png, webp; got {fmt!r}.")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise invalid_parameter(f"quality must be an integer from 1 to 100; got {quality!r}.")
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
