"""Full-resolution results: where the network paints, and how its painting reaches the photo's
own size.

A feed-forward network paints strokes of a fixed size in pixels, so painting a 12 MP photo at
12 MP gives strokes too small to read as the painting. The network therefore paints at the
size the request's `stroke_scale` asks for (PAINT_SIDE px on the long side at 1.0, the size
whose strokes the bundled styles were judged at), and a fast guided filter (He & Sun 2015,
arXiv:1505.00996) brings the result to full size: a local linear model of the painting in
terms of the photo's luminance, fitted at the painting's size and applied to the full-size
photo, so the photo's edges come back sharp while the strokes keep their shape.
docs/full_resolution.jpg compares it with Lanczos upscaling and full-size painting.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

Finish = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (photo, painted) strips -> result

PAINT_SIDE = 1024  # long side the network paints at with stroke_scale 1
RADIUS = 2  # guided filter window radius, in pixels at COEFF_SIDE
COEFF_SIDE = 768  # the largest long side the guided filter's slopes are fitted at
EPS = 1e-3  # regularisation on luminance 0..1: larger keeps less of the photo's detail
# Photo detail added back, as a multiple of the photo's own luminance detail: at least
# MIN_SLOPE everywhere, so edges stay sharp even where the painting ignores the photo (0 left
# them 4x soft, 1 brought back the photo's texture too), at most MAX_SLOPE per channel.
MIN_SLOPE, MAX_SLOPE = 0.5, 1.5
STRIP_ROWS = 256  # full-size rows per step: bounds the float buffers at any image size
BILINEAR = Image.Resampling.BILINEAR
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def paint_size(width: int, height: int, stroke_scale: float, max_pixels: int) -> tuple[int, int]:
    """(w, h) the network paints at: the long side PAINT_SIDE / stroke_scale, never larger than
    the image itself (upscaling a small photo first would only make its strokes smaller) nor
    over `max_pixels`."""
    scale = min(
        1.0, PAINT_SIDE / stroke_scale / max(width, height), (max_pixels / (width * height)) ** 0.5
    )
    return max(1, round(width * scale)), max(1, round(height * scale))


def render(
    photo: np.ndarray,
    paint: Callable[[np.ndarray], np.ndarray],
    *,
    stroke_scale: float,
    max_paint_pixels: int,
    finish: Finish,
) -> tuple[np.ndarray, tuple[int, int]]:
    """The photo (H, W, 3) uint8 stylized at its own size, and the (w, h) it was painted at.

    `paint` is the network (same size in and out); `finish` what is done to the result at full
    size (colour preservation, strength), applied strip by strip with the photo's strip."""
    height, width = photo.shape[:2]
    size = paint_size(width, height, stroke_scale, max_paint_pixels)
    if size == (width, height):
        out = paint(photo)
        for y0 in range(0, height, STRIP_ROWS):
            rows = slice(y0, y0 + STRIP_ROWS)
            out[rows] = finish(photo[rows], out[rows])
        return out, size
    small = np.asarray(
        Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    )
    return guided_upsample(paint(small), small, photo, finish), size


def _box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated. (H, W, C) float32, by running sums."""
    for axis in (0, 1):
        a = np.swapaxes(a, 0, axis)
        padded = np.concatenate([a[:1].repeat(r + 1, 0), a, a[-1:].repeat(r, 0)])
        sums = padded.cumsum(0, dtype=np.float32)  # sums[i] = padded[0..i]
        a = np.swapaxes((sums[2 * r + 1 :] - sums[: -2 * r - 1]) / (2 * r + 1), 0, axis)
    return a


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) @ _LUMA / 255.0)[..., None]  # (H, W, 1) in 0..1


def guided_upsample(
    painted: np.ndarray,
    photo_small: np.ndarray,
    photo: np.ndarray,
    finish: Finish = lambda _photo, painted: painted,
) -> np.ndarray:
    """The painting (h, w, 3) uint8 of `photo_small` brought to `photo`'s (H, W) size.

    The painting itself is upscaled with Lanczos, which keeps its strokes; what upscaling
    cannot bring back is the photo's own fine detail, lost when it was shrunk to be painted.
    That detail (the full-size luminance minus its upscaled small version) is added back in
    proportion to how strongly the painting follows the photo's luminance locally (the slope
    of a guided filter's linear model, fitted at the painting's size where it is cheap), and
    never less than MIN_SLOPE of it. `finish` is applied to each finished strip.
    Full-size work is done strip by strip, so the float buffers stay a few MB at any size.
    """
    # The slopes are smooth, so they are fitted at COEFF_SIDE at most (He & Sun's subsampling):
    # a painting larger than that would only make this part slow.
    h, w = painted.shape[:2]
    scale = min(1.0, COEFF_SIDE / max(h, w))
    fit = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_luma = _luma(photo_small)  # (h, w, 1)
    if fit != (w, h):
        painted_fit = np.asarray(Image.fromarray(painted).resize(fit, Image.Resampling.BOX))
        photo_fit = np.asarray(Image.fromarray(photo_small).resize(fit, Image.Resampling.BOX))
        guide = _luma(photo_fit)  # (fh, fw, 1)
    else:
        painted_fit, guide = painted, small_luma
    p = painted_fit.astype(np.float32) / 255.0  # (fh, fw, 3)
    mean_i, mean_p = _box(guide, RADIUS), _box(p, RADIUS)
    cov = _box(guide * p, RADIUS) - mean_i * mean_p
    var = _box(guide * guide, RADIUS) - mean_i * mean_i
    slope = np.clip(cov / (var + EPS), -MAX_SLOPE, MAX_SLOPE)  # (fh, fw, 3), per channel
    # Where the painting barely follows the photo, grey detail tops its luminance up to
    # MIN_SLOPE: sharp edges, and no colour a channel's own slope did not ask for.
    slope += np.maximum(0.0, MIN_SLOPE - slope @ _LUMA)[..., None]
    slope = _box(slope, RADIUS)
    height, width = photo.shape[:2]
    slopes = [Image.fromarray(np.ascontiguousarray(slope[..., c])) for c in range(3)]
    small_luma_image = Image.fromarray(np.ascontiguousarray(small_luma[..., 0]))
    # The painting in one piece: uint8, so it costs what the result does, and Pillow's 8-bit
    # resize given a `box` (as the strips below are) does not match its resize of the whole.
    base = np.asarray(Image.fromarray(painted).resize((width, height), Image.Resampling.LANCZOS))
    out = np.empty((height, width, 3), np.uint8)
    sy = h / height
    for y0 in range(0, height, STRIP_ROWS):
        y1 = min(height, y0 + STRIP_ROWS)
        size = (width, y1 - y0)
        fit_rows = (0.0, y0 * fit[1] / height, float(fit[0]), y1 * fit[1] / height)
        a = np.stack([np.asarray(s.resize(size, BILINEAR, box=fit_rows)) for s in slopes], -1)
        rows = (0.0, y0 * sy, float(w), y1 * sy)  # the strip's source rows, fractional
        luma_up = np.asarray(small_luma_image.resize(size, BILINEAR, box=rows))[..., None]
        detail = _luma(photo[y0:y1]) - luma_up
        strip = base[y0:y1] + (255.0 * detail) * a  # (rows, W, 3)
        out[y0:y1] = finish(photo[y0:y1], np.clip(strip + 0.5, 0, 255).astype(np.uint8))
    return out
