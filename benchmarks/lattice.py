#!/usr/bin/env python3
"""A diagonal lattice in the results, measured: how much more of their spectrum lies along the
diagonals than just beside them.

    python -m benchmarks.lattice                          # the shipped models
    python -m benchmarks.lattice --compare /tmp/old_models --photos 24

Per style: the luminance's power spectrum (Hann-windowed), the mean power in wedges of
±--wedge degrees around 45° and 135° over the mean power 6-16° away from them, at spatial
periods from 2.5 to 32 px (geometric mean of 8 rings); the median over the first --photos
Kodak photos of ../shared/data/eval at --size on the long side. Photos and paintings score
about 1; faint straight diagonal bands across flat areas (a network's lattice, not the
painting's strokes) push a style above its painting's score, printed beside it. With
--compare, a second row per style for another folder's models.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.palette_match import eval_photos, model_folders
from export.gallery import render

ROOT = Path(__file__).resolve().parents[1]
NEAR = (6.0, 16.0)  # degrees from a diagonal: the reference wedges
# Spatial periods, px: a lattice's straight, sharp-edged bands put most of their power above
# their own spacing's frequency, in a streak across these rings.
PERIODS = (2.5, 32.0)
RINGS = 8


def diagonal_ratio(img: Image.Image, wedge: float = 2.0) -> float:
    """Spectral power within `wedge` degrees of the diagonals over that 6-16° from them: the
    geometric mean over rings of spatial period PERIODS (a power spectrum falls off as 1/f²,
    so one mean over all rings would be the coarsest ring's)."""
    g = np.asarray(img.convert("L"), np.float64)  # (H, W)
    h, w = g.shape
    g = (g - g.mean()) * np.outer(np.hanning(h), np.hanning(w))  # no edge discontinuity
    power = np.abs(np.fft.fft2(g)) ** 2
    fy = np.fft.fftfreq(h)[:, None]  # cycles per px, so 45° is 45° in the image
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.hypot(fx, fy)
    angle = np.degrees(np.arctan2(fy, fx)) % 180
    off = np.minimum(np.abs(angle - 45), np.abs(angle - 135))
    diag, near = off <= wedge, (off >= NEAR[0]) & (off <= NEAR[1])
    edges = np.geomspace(1 / PERIODS[1], 1 / PERIODS[0], RINGS + 1)
    logs = []
    for lo, hi in itertools.pairwise(edges):
        ring = (radius >= lo) & (radius < hi)
        logs.append(np.log(power[ring & diag].mean() / power[ring & near].mean()))
    return float(np.exp(np.mean(logs)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--compare", type=Path, help="a folder of other models of the same styles")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared/data/styles")
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--wedge", type=float, default=2.0, help="half-width of the diagonal wedges, °")
    args = p.parse_args(argv)

    photos = eval_photos(args.eval, args.photos, args.size)
    if not photos:
        print(f"error: no .png photos in {args.eval}", file=sys.stderr)
        return 2
    folders = model_folders(args.models, args.compare)

    def score(images: list[Image.Image]) -> float:
        return float(np.median([diagonal_ratio(im, args.wedge) for im in images]))

    def painting_score(name: str) -> str:
        path = args.styles_dir / f"{name}.jpg"
        if not path.is_file():
            return "-"
        painting = Image.open(path).convert("RGB")
        painting.thumbnail((args.size, args.size))
        return f"{diagonal_ratio(painting, args.wedge):.2f}"

    print("style | models | results | painting")
    print("--- | --- | ---: | ---:")
    print(f"(no style) | photos | {score(photos):.2f} | -", flush=True)
    for name in sorted(folders["shipped"]):
        for label, styles in folders.items():
            if name in styles:
                results = [render(styles, name, photo) for photo in photos]
                print(
                    f"{name} | {label} | {score(results):.2f} | {painting_score(name)}", flush=True
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
