"""A painting made at a reduced size brought to the photo's own size and finished there, by the
full-resolution graphs (export/upsample_graph.py says what they compute): the guided filter's
slopes once, then the full-size photo strip by strip. Numpy in and out; the sessions are built
by the style registry, on its provider (CUDA on a GPU)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from stylefn.contract import (
    GRAPH_DIR,
    GUIDE_GRAPH,
    GUIDE_INPUTS,
    GUIDE_OUTPUT,
    UPSAMPLE_GRAPH,
    UPSAMPLE_INPUTS,
    UPSAMPLE_OUTPUT,
)
from stylefn.ops.config import FUNCTION_DIR

GRAPHS = FUNCTION_DIR / GRAPH_DIR
# Full-size pixels per run of the strip graph: its float buffers (12 bytes a pixel each) stay a
# few MB, in cache. Measured at 12 MP on 2 cores: 64-row strips (258k pixels) ran the graph in
# 0.38 s, 32 rows in 0.40 s, 128 rows in 0.42 s, the whole photo in one run over 3x slower.
STRIP_PIXELS = 1 << 18
# At most this many rows: a strip's rows are a matrix product with the small grid's rows they
# fall between, which are as many as the strip's own where the painting is full size.
MAX_STRIP_ROWS = 64


def strip_rows(width: int) -> int:
    """Rows per strip for a photo `width` pixels wide."""
    return max(1, min(MAX_STRIP_ROWS, STRIP_PIXELS // width))


@dataclass(frozen=True)
class Finish:
    """What is done to the result at full size: `strength` 0 gives the photo back, 1 the full
    style; `preserve_color` keeps the photo's colours and takes the result's luminance."""

    strength: float = 1.0
    preserve_color: bool = False


class Upsampler:
    """The two graphs' sessions, shared by every request thread (`run` is thread-safe)."""

    def __init__(self, guide: ort.InferenceSession, upsample: ort.InferenceSession):
        self._guide, self._upsample = guide, upsample

    @staticmethod
    def paths(directory: Path = GRAPHS) -> tuple[Path, Path]:
        """The guide graph's file, then the strip graph's."""
        return directory / GUIDE_GRAPH, directory / UPSAMPLE_GRAPH

    def __call__(
        self, photo: np.ndarray, painted: np.ndarray, photo_small: np.ndarray, finish: Finish
    ) -> np.ndarray:
        """`painted` (h, w, 3) uint8, the painting of `photo_small`, brought to `photo`'s
        (H, W) size and finished; (H, W, 3) uint8. Also right when h, w are H, W: then only
        the finish applies."""
        painted_name, small_name = GUIDE_INPUTS
        height, width = photo.shape[:2]
        if painted.shape[:2] == (height, width) and finish == Finish():
            return painted  # nothing to bring up or blend: what the graph would return, exactly
        if painted.shape[:2] == (height, width):
            # The slopes scale the photo's detail the painting lacks, and a painting of the
            # photo itself lacks none: no fit (35-60 ms of a 768x512 photo's ~0.3 s).
            slope = np.zeros((height, 1, 3), np.float32)
        else:
            feed = {painted_name: painted, small_name: photo_small}
            (slope,) = self._guide.run([GUIDE_OUTPUT], feed)
        photo_in, top, height_in, *_, strength, preserve = UPSAMPLE_INPUTS
        feeds = {
            height_in: np.array(height, np.int64),
            painted_name: painted,
            small_name: photo_small,
            GUIDE_OUTPUT: slope,
            strength: np.array(finish.strength, np.float32),
            preserve: np.array(float(finish.preserve_color), np.float32),
        }
        out = np.empty_like(photo)
        step = strip_rows(width)
        for y0 in range(0, height, step):
            rows = slice(y0, y0 + step)
            feed = {photo_in: photo[rows], top: np.array(y0, np.int64), **feeds}
            (out[rows],) = self._upsample.run([UPSAMPLE_OUTPUT], feed)
        return out
