"""Contact sheets of the shipped styles, made through the function's own inference code.

    python -m export.gallery                     # docs/gallery.jpg and docs/fast_vs_johnson.jpg

gallery.jpg: a row per style (the painting, then 4 Kodak photos from ../shared/data/eval in that
style, johnson arch), under a row of the photos themselves. fast_vs_johnson.jpg: two photos per
style, each by the johnson and the fast network side by side.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))  # the function's modules import each other flat

from inference import StyleRegistry  # noqa: E402

TILE = (288, 192)  # 3:2, the Kodak photos' shape
LABEL_H = 22
PHOTOS = ("kodim23", "kodim05", "kodim21", "kodim14")


def tile(img: Image.Image) -> Image.Image:
    return ImageOps.fit(img.convert("RGB"), TILE, Image.LANCZOS)


def label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + LABEL_H), "white")
    out.paste(img, (0, LABEL_H))
    ImageDraw.Draw(out).text((6, 3), text, fill="black", font=ImageFont.load_default(15))
    return out


def grid(rows: list[list[Image.Image]]) -> Image.Image:
    w, h = rows[0][0].size
    sheet = Image.new("RGB", (w * max(map(len, rows)), h * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(img, (c * w, r * h))
    return sheet


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.gallery", description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared/data/styles")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args(argv)

    registry = StyleRegistry(args.models)
    photos = {n: Image.open(args.eval / f"{n}.png").convert("RGB") for n in PHOTOS}

    # Stylized at the photos' own 768x512, then shrunk like the photos, so strokes look as
    # they do in a real request.
    def stylize(name: str, arch: str, photo: Image.Image) -> Image.Image:
        out = registry.stylize(registry.get(name, arch), np.asarray(photo))
        return tile(Image.fromarray(out))

    names = sorted(registry.styles)
    rows = [[label(Image.new("RGB", TILE, "white"), "")]]
    rows[0] += [label(tile(im), n) for n, im in photos.items()]
    pairs = []
    for name in names:
        style = registry.styles[name]
        title = style.describe(registry.default_arch)["title"]
        painting = tile(Image.open(args.styles_dir / f"{name}.jpg"))
        johnson = [stylize(name, "johnson", im) for im in photos.values()]
        rows.append([label(painting, title)] + [label(t, name) for t in johnson])
        if "fast" in style.models and "johnson" in style.models:
            pair = [label(painting, title)]
            for im, by_johnson in list(zip(photos.values(), johnson, strict=True))[:2]:
                pair += [label(by_johnson, f"{name} johnson")]
                pair += [label(stylize(name, "fast", im), f"{name} fast")]
            pairs.append(pair)
        print(name, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    grid(rows).save(args.out / "gallery.jpg", quality=80, optimize=True)
    if pairs:
        grid(pairs).save(args.out / "fast_vs_johnson.jpg", quality=80, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
