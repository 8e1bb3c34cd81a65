"""The camera's motion between two frames, as a whole-pixel translation (phase correlation), and
a frame moved by one. Numpy only, on the middle WINDOW of the frame: a few ms a frame."""

from __future__ import annotations

import numpy as np

# px: the middle square the translation is measured on (a whole 480p frame: 4x the time)
WINDOW = 320
# Below this peak of the normalised cross-power spectrum's inverse the match is noise (a cut, a
# zoom, motion everywhere): no translation is reported.
MIN_PEAK = 0.08


def translation(previous: np.ndarray, current: np.ndarray) -> tuple[int, int]:
    """(dy, dx) such that current[y, x] ~ previous[y + dy, x + dx]: a camera panning right
    moves the picture left, dx > 0. (0, 0) when no single translation explains the change."""
    a, b = _grey(previous), _grey(current)
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.rfft2(a * window) * np.conj(np.fft.rfft2(b * window))
    cross /= np.abs(cross) + 1e-9
    surface = np.fft.irfft2(cross, s=a.shape)  # (H, W), peaked at the shift
    y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    if surface[y, x] < MIN_PEAK:
        return 0, 0
    h, w = a.shape
    return int(y - h if y > h // 2 else y), int(x - w if x > w // 2 else x)


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image moved so that out[y, x] = image[y + dy, x + dx], edges repeated where it runs out."""
    h, w = image.shape[:2]
    rows = np.clip(np.arange(h) + dy, 0, h - 1)
    cols = np.clip(np.arange(w) + dx, 0, w - 1)
    return image[rows][:, cols]


def _grey(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    y, x = max(0, (h - WINDOW) // 2), max(0, (w - WINDOW) // 2)
    grey = rgb[y : y + WINDOW, x : x + WINDOW].astype(np.float32).mean(axis=2)
    return grey - grey.mean()
