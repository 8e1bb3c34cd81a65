"""The numpy guided upsampling the function served before its ONNX graphs (export/upsample_graph.py):
kept as the reference the graphs are checked against, never as a serving path.

A fast guided filter (He & Sun 2015, arXiv:1505.00996): the painting upscaled with Lanczos, plus
the photo's own fine detail (its full-size luminance minus its upscaled small version) in
proportion to how strongly the painting follows the photo's luminance locally (the slope of a
guided filter's linear model, fitted at <= COEFF_SIDE px where it is cheap), and never less than
MIN_SLOPE of it. The graphs compute the same thing with the same constants (imported from here).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RADIUS = 2  # guided filter window radius, in pixels at COEFF_SIDE
COEFF_SIDE = 768  # the largest long side the guided filter's slopes are fitted at
EPS = 1e-3  # regularisation on luminance 0..1: larger keeps less of the photo's detail
# Photo detail added back, as a multiple of the photo's own luminance detail: at least
# MIN_SLOPE everywhere, so edges stay sharp even where the painting ignores the photo (0 left
# them 4x soft, 1 brought back the photo's texture too), at most MAX_SLOPE per channel.
MIN_SLOPE, MAX_SLOPE = 0.5, 1.5
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" and YCbCr conversions
STRIP_ROWS = 256  # full-size rows per step: bounds the float buffers at any image size
_LUMA = np.array(LUMA, np.float32)
_BILINEAR = Image.Resampling.BILINEAR


def box(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated. (H, W, C) float32, by running sums."""
    for axis in (0, 1):
        a = np.swapaxes(a, 0, axis)
        padded = np.concatenate([a[:1].repeat(r + 1, 0), a, a[-1:].repeat(r, 0)])
        sums = padded.cumsum(0, dtype=np.float32)  # sums[i] = padded[0..i]
        a = np.swapaxes((sums[2 * r + 1 :] - sums[: -2 * r - 1]) / (2 * r + 1), 0, axis)
    return a


def luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float32) @ _LUMA / 255.0)[..., None]  # (H, W, 1) in 0..1


def fit_size(w: int, h: int) -> tuple[int, int]:
    """(w, h) the slopes are fitted at: the painting's size, its long side at most COEFF_SIDE."""
    scale = min(1.0, COEFF_SIDE / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def guided_upsample(painted: np.ndarray, photo_small: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """The painting (h, w, 3) uint8 of `photo_small` brought to `photo`'s (H, W) size."""
    h, w = painted.shape[:2]
    fit = fit_size(w, h)
    small_luma = luma(photo_small)  # (h, w, 1)
    if fit != (w, h):
        painted_fit = np.asarray(Image.fromarray(painted).resize(fit, Image.Resampling.BOX))
        photo_fit = np.asarray(Image.fromarray(photo_small).resize(fit, Image.Resampling.BOX))
        guide = luma(photo_fit)  # (fh, fw, 1)
    else:
        painted_fit, guide = painted, small_luma
    p = painted_fit.astype(np.float32) / 255.0  # (fh, fw, 3)
    mean_i, mean_p = box(guide, RADIUS), box(p, RADIUS)
    cov = box(guide * p, RADIUS) - mean_i * mean_p
    var = box(guide * guide, RADIUS) - mean_i * mean_i
    slope = np.clip(cov / (var + EPS), -MAX_SLOPE, MAX_SLOPE)  # (fh, fw, 3), per channel
    # Where the painting barely follows the photo, grey detail tops its luminance up to
    # MIN_SLOPE: sharp edges, and no colour a channel's own slope did not ask for.
    slope += np.maximum(0.0, MIN_SLOPE - slope @ _LUMA)[..., None]
    slope = box(slope, RADIUS)
    height, width = photo.shape[:2]
    slopes = [Image.fromarray(np.ascontiguousarray(slope[..., c])) for c in range(3)]
    small_luma_image = Image.fromarray(np.ascontiguousarray(small_luma[..., 0]))
    # Pillow's 8-bit resize given a `box` (as the strips below are) does not match its resize
    # of the whole, so the painting is upscaled in one piece.
    base = np.asarray(Image.fromarray(painted).resize((width, height), Image.Resampling.LANCZOS))
    out = np.empty((height, width, 3), np.uint8)
    sy = h / height
    for y0 in range(0, height, STRIP_ROWS):
        y1 = min(height, y0 + STRIP_ROWS)
        size = (width, y1 - y0)
        fit_rows = (0.0, y0 * fit[1] / height, float(fit[0]), y1 * fit[1] / height)
        a = np.stack([np.asarray(s.resize(size, _BILINEAR, box=fit_rows)) for s in slopes], -1)
        rows = (0.0, y0 * sy, float(w), y1 * sy)  # the strip's source rows, fractional
        luma_up = np.asarray(small_luma_image.resize(size, _BILINEAR, box=rows))[..., None]
        detail = luma(photo[y0:y1]) - luma_up
        strip = base[y0:y1] + (255.0 * detail) * a  # (rows, W, 3)
        out[y0:y1] = np.clip(strip + 0.5, 0, 255).astype(np.uint8)
    return out


def transfer_luminance(original: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The original's colours with the stylized image's luminance (Gatys et al. 2016): Y from
    `stylized`, Cb and Cr from `original`."""
    y, _, _ = Image.fromarray(stylized).convert("YCbCr").split()
    _, cb, cr = Image.fromarray(original).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


def blend(original: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 0 gives the original back, 1 the full style."""
    if strength >= 1.0:
        return stylized
    mixed = original.astype(np.float32) * (1.0 - strength) + stylized.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def render_reference(
    photo: np.ndarray,
    painted: np.ndarray,
    photo_small: np.ndarray,
    *,
    strength: float = 1.0,
    preserve_color: bool = False,
) -> np.ndarray:
    """What the function answered before the graphs: the painting brought to full size, then
    the finish (colour preservation, then strength) at full size."""
    same_size = painted.shape == photo.shape
    out = painted if same_size else guided_upsample(painted, photo_small, photo)
    if preserve_color:
        out = transfer_luminance(photo, out)
    return blend(photo, out, strength)
