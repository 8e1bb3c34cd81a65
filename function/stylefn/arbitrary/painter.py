"""Paint a photo like any painting, at request time, with no network trained on it (issue #31):
the frozen EfficientNet-Lite0 encoder; at each of its levels the WCT (wct.py), then the style
swap (swap.py); a decoder trained only to reconstruct photos; then the WCT on the pixels'
neighbourhoods.

The graphs come from `python -m export.arbitrary` (encoder.onnx with `levels` in its metadata,
decoder_LEVEL.onnx per level) in function/graphs/arbitrary. Pure numpy in and out; no HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from stylefn.arbitrary.swap import Patches, swap
from stylefn.arbitrary.wct import Moments, neighbourhood_moments, transfer, transfer_pixels
from stylefn.contract import INPUT_NAME, arbitrary_features_name

MULTIPLE = 16  # the encoder's sides: its deepest tap is 1/16 of the image
# The painting's long side at stroke_scale 1: its textures then come out at twice their size
# on a result painted at 1024 px (full_resolution.PAINT_SIDE), as large as trained styles'.
ANALYSIS_SIDE = 512
MAX_ANALYSIS_SIDE = 2048  # stroke_scale 0.25
# How much of each photo feature the painting's patch replaces, the rest is the WCT's. All of
# it paints hardest but loses the photo: the result's luminance correlates 0.18-0.67 with the
# photo's (3 Kodak photos, six held-out paintings), the peer's 0.32-0.76; at 0.7, 0.32-0.79,
# with the painting's marks still drawn (docs/arbitrary_style.md).
SWAP_WEIGHT = 0.7

# path, name for the log -> a session (registry.StyleRegistry.build: the process's provider)
Build = Callable[[Path, str], Any]


@dataclass(frozen=True, eq=False)
class AnalysedPainting:
    """A painting's statistics: what a request with it needs, and what the cache keeps."""

    features: dict[str, Moments]  # by encoder level
    patches: dict[str, Patches]  # by encoder level
    pixels: Moments  # of its 3x3 neighbourhoods
    size: tuple[int, int]  # (w, h) it was analysed at

    @property
    def nbytes(self) -> int:
        moments = sum(m.nbytes for m in self.features.values())
        return self.pixels.nbytes + moments + sum(p.nbytes for p in self.patches.values())


def analysis_side(stroke_scale: float) -> int:
    """The painting's long side for `stroke_scale`: larger strokes, a smaller painting (its
    textures then cover more of the photo)."""
    return min(MAX_ANALYSIS_SIDE, round(ANALYSIS_SIDE / stroke_scale))


class ArbitraryPainter:
    """The encoder and decoder sessions, built once per process (instance.py)."""

    def __init__(self, directory: Path, build: Build):
        # For the whole process: numpy's BLAS threads spin after each of the transform's
        # matmuls and take the cores from the next ONNX Runtime run. With one, 512x512 paints
        # in 154 ms instead of 282 on 2 cores; the matmuls are small (C <= 144) and gain
        # little from threads (benchmarks/style_image.py).
        threadpool_limits(1, user_api="blas")
        self.encoder = build(directory / "encoder.onnx", "arbitrary: encoder")
        meta = self.encoder.get_modelmeta().custom_metadata_map
        self.method = meta.get("method", "wct")
        self.levels: list[str] = json.loads(meta["levels"])
        self.decoders = {
            level: build(directory / f"decoder_{level}.onnx", f"arbitrary: decoder {level}")
            for level in self.levels
        }

    @staticmethod
    def paths(directory: Path) -> list[Path]:
        """The files a deployment must hold (checked at start: the encoder names the rest)."""
        return [directory / "encoder.onnx"]

    def _features(self, rgb: np.ndarray, level: str) -> np.ndarray:
        """(H, W, 3) uint8, sides multiples of 16 -> (C, H/s, W/s) float32."""
        (out,) = self.encoder.run([arbitrary_features_name(level)], {INPUT_NAME: rgb[None]})
        return np.asarray(out[0])

    def analyse(self, painting: np.ndarray, side: int) -> AnalysedPainting:
        """A painting (H, W, 3) uint8 analysed with its long side `side` (never enlarged),
        each side rounded to a multiple of 16 (statistics do not mind the slight stretch)."""
        h, w = painting.shape[:2]
        scale = min(1.0, side / max(h, w))
        size = (_round16(w * scale), _round16(h * scale))
        if size != (w, h):
            painting = np.asarray(
                Image.fromarray(painting).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            )
        features = {level: self._features(painting, level) for level in self.levels}
        return AnalysedPainting(
            {level: Moments.of(_flat(f)) for level, f in features.items()},
            {level: Patches.of(f) for level, f in features.items()},
            neighbourhood_moments(painting),
            size,
        )

    def paint(self, photo: np.ndarray, painting: AnalysedPainting, strength: float) -> np.ndarray:
        """(H, W, 3) uint8 painted like `painting`, the same size. `strength` blends the
        features with the photo's own, and the last step's target statistics with the
        photo's pixels' (which also takes out the decoder's colour cast: 0 gives the photo)."""
        h, w = photo.shape[:2]
        x = _pad16(photo)  # (H16, W16, 3)
        for level in self.levels:  # coarse to fine
            own = self._features(x, level)  # (C, H/s, W/s)
            moved = transfer(own, painting.features[level])
            swapped = swap(moved, painting.patches[level])
            features = SWAP_WEIGHT * swapped + (1.0 - SWAP_WEIGHT) * moved
            if strength < 1.0:
                features = strength * features + (1.0 - strength) * own
            (x,) = self.decoders[level].run(None, {arbitrary_features_name(level): features[None]})
            x = x[0]
        targets = [(painting.pixels, strength)]
        if strength < 1.0:
            targets.append((neighbourhood_moments(photo), 1.0 - strength))
        return transfer_pixels(np.ascontiguousarray(x[:h, :w]), targets)


def _flat(features: np.ndarray) -> np.ndarray:
    return features.reshape(features.shape[0], -1)


def _round16(n: float) -> int:
    return max(MULTIPLE, round(n / MULTIPLE) * MULTIPLE)


def _pad16(rgb: np.ndarray) -> np.ndarray:
    """Mirrored out to sides that are multiples of 16 (a flat border would skew the photo's
    statistics less than zeros, a mirror least)."""
    h, w = rgb.shape[:2]
    pad = ((0, -h % MULTIPLE), (0, -w % MULTIPLE), (0, 0))
    return np.ascontiguousarray(np.pad(rgb, pad, mode="symmetric")) if any(pad[0] + pad[1]) else rgb
