"""POST / with `style_image`: the photo painted like a painting the request brings (issue #31),
by the arbitrary-style graphs (arbitrary/painter.py) instead of a named style's network.

The painting is held to a photo's limits (format, pixels, decode cost), decoded no larger than
it is analysed at, and its statistics are cached by content (arbitrary/cache.py), so sending
the same painting again skips its decode and analysis. `stroke_scale` sets the size it is
analysed at; the photo is painted as a named style's is at stroke_scale 1, then brought to full
size and finished. `strength` blends in feature space, so the finish gets the whole painting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from stylefn.arbitrary.cache import painting_key
from stylefn.arbitrary.painter import analysis_side
from stylefn.http.errors import invalid_parameter
from stylefn.http.options import Options
from stylefn.http.stylized import Painter
from stylefn.imaging.decode import decode_image, probe_pixels
from stylefn.imaging.errors import ImagingError
from stylefn.imaging.full_resolution import PAINT_SIDE, render
from stylefn.imaging.upsample import Finish
from stylefn.instance import Instance

MAX_PAINT_PIXELS = PAINT_SIDE * PAINT_SIDE  # one run of the graphs, no tiles


def check_options(opts: Options) -> None:
    if opts.style is not None:
        raise invalid_parameter(
            "Send style or style_image, not both: style names one of our paintings "
            "(GET /styles), style_image brings your own."
        )
    if opts.arch is not None:
        raise invalid_parameter("arch applies to named styles; leave it out with style_image.")


@contextmanager
def _the_painting() -> Iterator[None]:
    """Imaging's refusals (the same codes as for a photo), saying it was the style image."""
    try:
        yield
    except ImagingError as e:
        raise type(e)(f"style_image: {e.message}") from e


def probe_painting(data: bytes, *, max_pixels: int) -> int:
    """The style image's pixels, from its header, refused as a photo would be."""
    with _the_painting():
        return probe_pixels(data, max_pixels=max_pixels)


def decode_painting(data: bytes, *, max_pixels: int, side: int) -> np.ndarray:
    """The style image, RGB, its long side at most `side`."""
    with _the_painting():
        return decode_image(data, max_pixels=max_pixels, max_side=side).rgb


def paint_like_image(
    current: Instance, data: bytes, photo: np.ndarray, opts: Options, max_pixels: int
) -> tuple[Painter, np.ndarray, tuple[int, int]]:
    """The photo (H, W, 3) uint8 painted like the style image `data` and finished at its own
    size; what painted, and the (w, h) it was painted at."""
    side = analysis_side(opts.stroke_scale)
    key = painting_key(data, side)
    painting, cached = current.paintings.get(
        key, lambda: current.analyse(decode_painting(data, max_pixels=max_pixels, side=side), side)
    )
    finish = Finish(1.0, opts.preserve_color)
    out, size = render(
        photo,
        lambda rgb: current.paint_like(painting, rgb, opts.strength),
        lambda full, painted, small: current.upsample(full, painted, small, finish),
        stroke_scale=1.0,
        max_paint_pixels=MAX_PAINT_PIXELS,
    )
    return Painter(f"style_image:{key[0][:12]}", current.arbitrary.method, cached), out, size
