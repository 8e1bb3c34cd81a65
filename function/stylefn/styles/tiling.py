"""Painting an image too large for one network run: overlapping tiles that normalise alike.

Instance norm normalises each feature map by its own mean and variance, so tiles painted on
their own would each get their own contrast and colour cast, and the seams would show. The
tile graph (export/wrapper.py TileStylizer, contract.TILES_SUFFIX) takes the statistics to use
instead: they are computed once, on the whole image shrunk to one run's size, and every tile
is painted with them. Tiles overlap by MARGIN pixels on each side, more than the network's
receptive field reaches in practice, and only each tile's core is kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import onnxruntime as ort
from PIL import Image

from stylefn.contract import INPUT_NAME, OUTPUT_NAME, STATS_INPUT, STATS_OUTPUT, USE_STATS_INPUT

MARGIN = 96  # px of context on each side of a tile's core; a multiple of every arch's stride


def tiles(height: int, width: int, max_pixels: int) -> list[tuple[slice, slice]]:
    """(rows, cols) of each tile's core: as few tiles as fit `max_pixels` with their margins,
    cut evenly so none is mostly margin. Core sides are multiples of 8, so every tile starts
    at the same stride-2 phase as the whole image and its pixels come out as in one run."""
    side = max(64, int(max_pixels**0.5) - 2 * MARGIN)  # the largest square core that fits

    def cuts(length: int) -> list[int]:
        count = math.ceil(length / side)
        core = math.ceil(length / count / 8) * 8
        return [*range(0, length, core), length]

    ys, xs = cuts(height), cuts(width)
    return [
        (slice(y0, y1), slice(x0, x1))
        for y0, y1 in itertools.pairwise(ys)
        for x0, x1 in itertools.pairwise(xs)
    ]


def statistics_feed(
    session: ort.InferenceSession, stats: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The tile graph's statistics inputs: paint with `stats` (2, S), or (None) with each
    image's own."""
    if stats is None:
        size = session.get_inputs()[1].shape[1]
        return {
            STATS_INPUT: np.zeros((2, size), np.float32),
            USE_STATS_INPUT: np.zeros((), np.float32),
        }
    return {STATS_INPUT: stats.astype(np.float32), USE_STATS_INPUT: np.ones((), np.float32)}


def norm_statistics(
    session: ort.InferenceSession,
    rgb: np.ndarray,
    max_pixels: int,
    style: Mapping[str, np.ndarray] = MappingProxyType({}),
) -> np.ndarray:
    """(2, S) float32: the network's instance-norm statistics for `rgb` (H, W, 3) uint8,
    computed on the image shrunk to at most `max_pixels`; `style` the style weights a
    multi-style graph takes."""
    h, w = rgb.shape[:2]
    scale = min(1.0, (max_pixels / (h * w)) ** 0.5)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    (stats,) = session.run(
        [STATS_OUTPUT], {INPUT_NAME: rgb[None], **statistics_feed(session, None), **style}
    )
    return stats[0]


def paint_in_tiles(
    session: ort.InferenceSession,
    rgb: np.ndarray,
    *,
    max_pixels: int,
    stats: np.ndarray | None = None,
    style: Mapping[str, np.ndarray] = MappingProxyType({}),
) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 3) uint8, painted in runs of at most ~`max_pixels` each.

    `stats` (2, S) are the statistics to paint with; by default norm_statistics at the same
    budget. Painting with the statistics of the whole, unshrunk image gives what one run
    would, to float rounding (tests/test_full_resolution.py). `style`: the style weights a
    multi-style graph takes."""
    h, w = rgb.shape[:2]
    if stats is None:
        stats = norm_statistics(session, rgb, max_pixels, style)
    out = np.empty_like(rgb)
    feeds = {**statistics_feed(session, stats), **style}
    for rows, cols in tiles(h, w, max_pixels):
        y0, x0 = max(0, rows.start - MARGIN), max(0, cols.start - MARGIN)
        y1, x1 = min(h, rows.stop + MARGIN), min(w, cols.stop + MARGIN)
        tile = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        (painted,) = session.run([OUTPUT_NAME], {INPUT_NAME: tile[None], **feeds})
        out[rows, cols] = painted[
            0, rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0
        ]
    return out
