"""Parity of the full-resolution graphs with the numpy path they replaced (upsample_reference.py).

Each photo is enlarged 4x and 2x (a 4x larger photo is painted at a quarter of its size, as a
12 MP phone photo is at stroke_scale 1) and kept at its own size (painted at full size: the
graphs then only finish), under three finishes. The figures are grey-level differences of the
uint8 results, every channel of every pixel: the largest, the mean, the 99.9th percentile.
Where they differ is the painting's upsampling kernel (bicubic here, Lanczos there: the
largest differences sit on the painting's sharpest strokes) and colour preservation's
rounding (Pillow's YCbCr in 8 bits there, one float step here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from export.upsample_reference import render_reference
from stylefn.imaging.full_resolution import paint_size
from stylefn.imaging.upsample import Finish, Upsampler

ENLARGEMENTS = (4, 2, 1)
FINISHES = (Finish(), Finish(0.6), Finish(0.8, preserve_color=True))
# Over every case: the mean difference, the 99.9th percentile and the largest, grey levels.
# Measured on the 24 Kodak photos of ../shared/data/eval: 1.39, 9 and 23.
TOLERANCE = {"mean": 1.5, "p99.9": 12.0, "max": 32.0}


class UpsampleParityError(Exception):
    """The graphs and the numpy reference disagree beyond TOLERANCE."""


@dataclass(frozen=True)
class Case:
    name: str
    max: int
    mean: float
    p999: float


def upsampler(guide: Path, strips: Path) -> Upsampler:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = True
    cpu = ["CPUExecutionProvider"]
    return Upsampler(
        ort.InferenceSession(str(guide), options, providers=cpu),
        ort.InferenceSession(str(strips), options, providers=cpu),
    )


def compare(
    run: Upsampler,
    photos: Iterable[tuple[str, np.ndarray]],
    paint: Callable[[np.ndarray], np.ndarray],
) -> list[Case]:
    """One Case per photo, enlargement and finish."""
    cases = []
    for name, photo in photos:
        h, w = photo.shape[:2]
        for k in ENLARGEMENTS:
            big = np.asarray(
                Image.fromarray(photo).resize((w * k, h * k), Image.Resampling.LANCZOS)
            )
            size = paint_size(w * k, h * k, 1.0, 10**9)
            small = np.asarray(
                Image.fromarray(big).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            )
            painted = paint(small)
            for finish in FINISHES:
                ours = run(big, painted, small, finish).astype(np.int16)
                reference = render_reference(
                    big, painted, small,
                    strength=finish.strength, preserve_color=finish.preserve_color,
                )  # fmt: skip
                diff = np.abs(ours - reference)
                label = f"{name} x{k} s={finish.strength:g}{' pc' if finish.preserve_color else ''}"
                p999 = float(np.percentile(diff, 99.9))
                cases.append(Case(label, int(diff.max()), float(diff.mean()), p999))
    return cases


def check(cases: list[Case]) -> dict[str, float]:
    """The figures over all cases; raises UpsampleParityError beyond TOLERANCE."""
    summary = {
        "mean": max(c.mean for c in cases),
        "p99.9": max(c.p999 for c in cases),
        "max": max(c.max for c in cases),
    }
    over = {k: v for k, v in summary.items() if v > TOLERANCE[k]}
    if over:
        worst = max(cases, key=lambda c: c.max)
        raise UpsampleParityError(f"over tolerance {TOLERANCE}: {over} (worst case {worst})")
    return summary


def format_report(cases: list[Case]) -> str:
    lines = [f"{'case':<34}{'max':>5}{'mean':>7}{'p99.9':>7}"]
    lines += [f"{c.name:<34}{c.max:>5}{c.mean:>7.3f}{c.p999:>7.1f}" for c in cases]
    return "\n".join(lines)
