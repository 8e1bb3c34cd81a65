#!/usr/bin/env python3
"""How close each style's results come to its painting's colours, measured without the loss
network that trained them: a second opinion beside the eye.

    python -m benchmarks.palette_match                          # the shipped models
    python -m benchmarks.palette_match --compare /tmp/old_models --photos 8

Per style, the sliced Wasserstein-1 distance in CIELAB (L, a, b units; 64 random directions)
between the pixels of each result and the pixels of its painting, averaged over the first
--photos Kodak photos of ../shared/data/eval at --size on the long side; beside it the same
distance for the unstyled photos (the "no style" baseline) and, with --compare, for another
folder's models of the same styles. Lower is closer. It sees colour, not brush strokes: a model
that copies the palette but not the texture scores well, so read it with the gallery.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from export.gallery import Styles, load_styles, render

ROOT = Path(__file__).resolve().parents[1]


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 sRGB -> (N, 3) float CIELAB, D65 white."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (
        linear
        @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, directions: np.ndarray) -> float:
    """Mean over unit `directions` (D, 3) of the 1-D Wasserstein-1 distance of the projections,
    each point set resampled to the same 4,096 quantiles."""
    q = np.linspace(0, 1, 4096)
    pa = np.quantile(a @ directions.T, q, axis=0)  # (Q, D)
    pb = np.quantile(b @ directions.T, q, axis=0)
    return float(np.abs(pa - pb).mean())


def pixels(img: Image.Image) -> np.ndarray:
    return srgb_to_lab(np.asarray(img.convert("RGB")).reshape(-1, 3))


def eval_photos(folder: Path, count: int, size: int) -> list[Image.Image]:
    """The first `count` .png photos of `folder`, each fit within size x size."""
    return [
        ImageOps.contain(Image.open(f).convert("RGB"), (size, size))
        for f in sorted(folder.glob("*.png"))[:count]
    ]


def model_folders(models: Path, compare: Path | None) -> dict[str, Styles]:
    """The painters of `models` ("shipped") and, when given, of `compare` ("compare")."""
    folders = {"shipped": load_styles(models)}
    if compare:
        folders["compare"] = load_styles(compare)
    return folders


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--compare", type=Path, help="a folder of other models of the same styles")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared/data/styles")
    p.add_argument("--photos", type=int, default=6)
    p.add_argument("--size", type=int, default=512)
    args = p.parse_args(argv)

    rng = np.random.default_rng(0)
    directions = rng.normal(size=(64, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    photos = eval_photos(args.eval, args.photos, args.size)
    if not photos:
        print(f"error: no .png photos in {args.eval}", file=sys.stderr)
        return 2
    folders = model_folders(args.models, args.compare)

    photo_pixels = [pixels(photo) for photo in photos]  # the baseline, the same for every style

    def distance(results: list[np.ndarray], target: np.ndarray) -> float:
        return float(np.mean([sliced_wasserstein(r, target, directions) for r in results]))

    header = ["style", "no style", *folders]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name in sorted(folders["shipped"]):
        painting = Image.open(args.styles_dir / f"{name}.jpg")
        target = pixels(ImageOps.contain(painting.convert("RGB"), (args.size, args.size)))
        row = [distance(photo_pixels, target)] + [
            distance([pixels(render(styles, name, photo)) for photo in photos], target)
            if name in styles
            else float("nan")
            for styles in folders.values()
        ]
        print(" | ".join([name, *(f"{v:.2f}" for v in row)]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
