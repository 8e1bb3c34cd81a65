"""A tiny training set, to try training on a fresh clone before you have a photo collection:
generated photo-like images, and a painting taken from a bundled model (the 256 px thumbnail
every model carries of the painting it was trained on).

    python -m training.starter_data data/starter
    python -m training.train --style data/starter/starry_night.jpg \
        --data data/starter/photos --out runs/quickstart --arch fast --steps 300 --tv-weight 10

The photos are smooth gradients with shapes and noise: enough to watch a network learn a
painting's palette and strokes in minutes, not to make one you would ship. For that, train on
a few hundred real photos (docs/training.md, "What you need").
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stylefn.contract import PAINTING_KEY, TILES_SUFFIX, style_painting_key
from training.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "function" / "models"


def photo(seed: int, width: int = 384, height: int = 288) -> Image.Image:
    """A photo-like RGB image: a sky-to-ground gradient, soft shapes, edges and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    top, bottom = rng.uniform(40, 230, 3), rng.uniform(20, 200, 3)
    base = top + (bottom - top) * yy[..., None] + 30 * np.sin(xx[..., None] * rng.uniform(2, 9))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = int(rng.integers(-40, width)), int(rng.integers(-40, height))
        w, h = int(rng.integers(20, width // 2)), int(rng.integers(20, height // 2))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=color, outline=(0, 0, 0), width=2)
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    noisy = np.asarray(img, np.float32) + rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def bundled_painting(name: str, models: Path = MODELS) -> bytes:
    """The JPEG of painting `name` that a bundled model carries in its metadata."""
    import onnx  # the train extra's

    for path in sorted(models.glob("*.onnx")):
        if path.name.endswith(TILES_SUFFIX):
            continue
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        if props.get(style_painting_key(name)):  # a multi-style model's
            return base64.b64decode(props[style_painting_key(name)])
        if props.get("name") == name and props.get(PAINTING_KEY):
            return base64.b64decode(props[PAINTING_KEY])
    raise UsageError(f"no model in {models} carries the painting {name!r}")


def write(out: Path, count: int, painting: str) -> list[Path]:
    """OUT/photos/photo_N.jpg and OUT/PAINTING.jpg; returns what it wrote."""
    (out / "photos").mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        path = out / "photos" / f"photo_{i:03d}.jpg"
        photo(i).save(path, quality=90)
        written.append(path)
    path = out / f"{painting}.jpg"
    path.write_bytes(bundled_painting(painting))
    return [*written, path]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.starter_data", description=__doc__.split("\n")[0]
    )
    p.add_argument("out", type=Path, help="folder to write photos/ and the painting into")
    p.add_argument("--count", type=int, default=64, help="photos to generate")
    p.add_argument("--painting", default="starry_night", help="a bundled style's name")
    args = p.parse_args(argv)
    try:
        written = write(args.out, args.count, args.painting)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written) - 1} photos to {args.out / 'photos'} and {written[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
