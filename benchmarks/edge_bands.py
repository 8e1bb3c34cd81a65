#!/usr/bin/env python3
"""Bands along a result's edges, measured: how far the colour of each side's outer strip is
from the colour just inside it.

    python -m benchmarks.edge_bands                          # the shipped models
    python -m benchmarks.edge_bands --compare /tmp/old_models --photos 6

Per style and side (left, right, top, bottom): the CIELAB distance between the mean colour of
the result's outer --strip px and that of the next --inner px, averaged over the first --photos
Kodak photos of ../shared/data/eval at --size on the long side. The unstyled photos' own row
is the baseline (a photo's edge is rarely its centre's colour either): a style well above it on
one side paints a band there, such as a painting's scanned border or its layout (wheat at the
bottom) learnt as an edge. With --compare, a second row per style for another folder's models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.palette_match import eval_photos, model_folders, srgb_to_lab
from export.gallery import render

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("left", "right", "top", "bottom")


def side_distances(img: Image.Image, strip: int, inner: int) -> np.ndarray:
    """(4,) CIELAB distance between the outer `strip` px and the next `inner` px, per side."""
    rgb = np.asarray(img.convert("RGB"))
    h, w, _ = rgb.shape
    lab = srgb_to_lab(rgb.reshape(-1, 3)).reshape(h, w, 3)  # (H, W, 3)
    band = slice(0, strip)
    inside = slice(strip, strip + inner)
    pairs = [
        (lab[:, band], lab[:, inside]),
        (lab[:, ::-1][:, band], lab[:, ::-1][:, inside]),
        (lab[band], lab[inside]),
        (lab[::-1][band], lab[::-1][inside]),
    ]
    return np.array(
        [np.linalg.norm(a.reshape(-1, 3).mean(0) - b.reshape(-1, 3).mean(0)) for a, b in pairs]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--compare", type=Path, help="a folder of other models of the same styles")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--strip", type=int, default=8, help="outer strip width, px")
    p.add_argument("--inner", type=int, default=24, help="the reference strip inside it, px")
    args = p.parse_args(argv)

    photos = eval_photos(args.eval, args.photos, args.size)
    if not photos:
        print(f"error: no .png photos in {args.eval}", file=sys.stderr)
        return 2
    folders = model_folders(args.models, args.compare)

    def mean_sides(images: list[Image.Image]) -> str:
        d = np.mean([side_distances(im, args.strip, args.inner) for im in images], axis=0)
        return " | ".join(f"{v:.1f}" for v in d)

    header = ["style", "models", *SIDES]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    print(f"(no style) | photos | {mean_sides(photos)}", flush=True)
    for name in sorted(folders["shipped"]):
        for label, styles in folders.items():
            if name in styles:
                results = [render(styles, name, photo) for photo in photos]
                print(f"{name} | {label} | {mean_sides(results)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
