"""Painting a clip's frames so that they do not flicker.

Frame by frame, a feed-forward network flickers for three reasons, each handled here:
1. Its strokes sit on the grid of its stride-2 stages (8 px for `fast`), so when the camera
   pans by a pixel or two the same wall is painted with different strokes. Measured on a
   2 px-per-frame pan: 17.7 grey levels of warped temporal error, against 3.4 for a pan by a
   whole 8 px. The camera's translation is estimated (motion.py) and the frame is padded so
   that the grid stays put on the scene: 2.3.
2. Instance norm recomputes its statistics on every frame. They are shared: the first frame's,
   then a slow running mean of each frame's own (STATS_FOLLOW), so a cut is followed within a
   second without a jump.
3. The network amplifies sensor noise differently each time. Where a pixel matches the
   previous frame moved by the camera, the result leans on the previous result (BLEND,
   weighted down as the difference grows past NOISE_LEVELS): still areas stop shimmering,
   moving objects keep their own painting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stylefn.video.motion import shifted, translation

GRID = 8  # px: the largest stride of the bundled archs (fast: 3 stride-2 stages)
STATS_FOLLOW = 0.1  # weight of each new frame's own statistics in the shared ones
BLEND = 0.7  # the previous result's weight where the frame matches it exactly
NOISE_LEVELS = 6.0  # grey levels of difference at which that weight has fallen to 1/e

# (frame, shared statistics or None for its own) -> (painting, the frame's own statistics or
# None where the graph reports none)
Paint = Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]


@dataclass
class FramePainter:
    """Paints the frames of one clip, in order, all at one size: (H, W, 3) uint8 in and out."""

    paint: Paint
    align: bool = True
    blend: float = BLEND
    stats: np.ndarray | None = None  # (2, S) shared; None until the first frame
    offset: tuple[int, int] = (0, 0)  # the camera's travel since the first frame, px
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (frame, result)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        motion = translation(self.previous[0], frame) if self.previous is not None else (0, 0)
        oy, ox = self.offset = (self.offset[0] + motion[0], self.offset[1] + motion[1])
        py, px = (oy % GRID, ox % GRID) if self.align else (0, 0)
        padded = np.pad(frame, ((py, 0), (px, 0), (0, 0)), mode="reflect") if py or px else frame
        painted, own = self.paint(padded, self.stats)
        painted = painted[py:, px:]
        if own is not None:
            self.stats = own if self.stats is None else (
                (1 - STATS_FOLLOW) * self.stats + STATS_FOLLOW * own
            ).astype(np.float32)  # fmt: skip
        if self.previous is not None and self.blend > 0:
            painted = self._lean_on_previous(frame, painted, motion)
        self.previous = (frame, painted)
        return painted

    def _lean_on_previous(
        self, frame: np.ndarray, painted: np.ndarray, motion: tuple[int, int]
    ) -> np.ndarray:
        assert self.previous is not None
        before, result = (shifted(a, *motion) for a in self.previous)
        difference = np.abs(frame.astype(np.float32) - before).mean(axis=2, keepdims=True)
        weight = self.blend * np.exp(-((difference / NOISE_LEVELS) ** 2))  # (H, W, 1)
        mixed = painted + weight * (result.astype(np.float32) - painted)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
