"""Contact sheets of the shipped styles, made with the exported ONNX files as the function runs
them: the graph carries every pixel convention, so a session's output is the function's.

    python -m export.gallery                     # docs/gallery.jpg and docs/crops.jpg
    python -m export.gallery --compare old_models --compare-label "random loss"

gallery.jpg: a row per style (the painting, then 4 Kodak photos from ../shared/data/eval in that
style, each in the arch a CPU instance serves by default: fast where the style has it), under a
row of the photos themselves. crops.jpg: a
100 % crop of one 768x512 result per style, beside the same crop of the photo, where lattices,
halos and noise show. borders.jpg: the top-left and bottom-right corners of one result per style
at 300 %, where a band along the edge shows. With --compare DIR, compare.jpg: the same photos
by the models in DIR and by the shipped ones, side by side, for each style whose model differs
(its metadata); borders.jpg then shows both for every style.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageDraw, ImageFont, ImageOps

from export.onnx_export import style_models
from stylefn.contract import (
    INPUT_NAME,
    PAINTING_KEY,
    STYLE_WEIGHTS_INPUT,
    STYLES_KEY,
    style_painting_key,
)

ROOT = Path(__file__).resolve().parents[1]

TILE = (288, 192)  # 3:2, the Kodak photos' shape
LABEL_H = 22
PHOTOS = ("kodim23", "kodim05", "kodim21", "kodim14")
CROP = (300, 40, 588, 232)  # a TILE-sized box of kodim23 at 768x512: feathers, eye, beak
BORDER_PHOTO = "kodim05"  # sky and wall reach its top-left corner, a dark lawn the other
ZOOM = 3


def tile(img: Image.Image) -> Image.Image:
    return ImageOps.fit(img.convert("RGB"), TILE, Image.Resampling.LANCZOS)


def label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + LABEL_H), "white")
    out.paste(img, (0, LABEL_H))
    ImageDraw.Draw(out).text((6, 3), text, fill="black", font=ImageFont.load_default(15))
    return out


def corners(img: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The top-left and bottom-right TILE / ZOOM boxes, enlarged ZOOM times without smoothing."""
    w, h = TILE[0] // ZOOM, TILE[1] // ZOOM
    top_left = img.crop((0, 0, w, h))
    bottom_right = img.crop((img.width - w, img.height - h, img.width, img.height))
    nearest = Image.Resampling.NEAREST
    return top_left.resize(TILE, nearest), bottom_right.resize(TILE, nearest)


def grid(rows: list[list[Image.Image]]) -> Image.Image:
    w, h = rows[0][0].size
    sheet = Image.new("RGB", (w * max(map(len, rows)), h * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            sheet.paste(img, (c * w, r * h))
    return sheet


@dataclass(frozen=True)
class Painter:
    """How one style is painted: a session, and the style weights a multi-style graph takes."""

    session: ort.InferenceSession
    meta: dict[str, str]  # the model's metadata, a multi-style model's style entry merged in
    weights: np.ndarray | None = None  # (S,) one-hot; None for a single-style graph

    def __call__(self, photo: Image.Image) -> Image.Image:
        """At the photo's own size, as a request without options gets on a CPU instance."""
        feeds = {INPUT_NAME: np.asarray(photo.convert("RGB"))[None]}  # (1, H, W, 3) uint8
        if self.weights is not None:
            feeds[STYLE_WEIGHTS_INPUT] = self.weights
        return Image.fromarray(self.session.run(None, feeds)[0][0])


Styles = dict[str, Painter]


def load_styles(folder: Path) -> Styles:
    """A painter per style: its fast network where it has one, else its johnson network; each
    style of a multi-style model."""
    styles: Styles = {}
    for path in style_models(folder):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        listed = json.loads(meta[STYLES_KEY]) if STYLES_KEY in meta else None
        painters = (
            {
                s["name"]: Painter(session, meta | s, np.eye(len(listed), dtype=np.float32)[i])
                for i, s in enumerate(listed)
            }
            if listed
            else {meta.get("name") or path.name.split(".")[0]: Painter(session, meta)}
        )
        for name, painter in painters.items():
            if name not in styles or meta.get("arch") == "fast":
                styles[name] = painter
    return styles


def painting(p: Painter, styles_dir: Path, name: str) -> Image.Image:
    """The painting file where this machine has it, else the model's thumbnail (a style added
    with training.add_style, or a machine without ../shared)."""
    path = styles_dir / f"{name}.jpg"
    if path.is_file():
        return Image.open(path)
    thumbnail = p.meta.get(style_painting_key(name)) or p.meta.get(PAINTING_KEY)
    if thumbnail:
        return Image.open(io.BytesIO(base64.b64decode(thumbnail)))
    return Image.new("RGB", (8, 8), "white")


def render(styles: Styles, name: str, photo: Image.Image) -> Image.Image:
    return styles[name](photo)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.gallery", description=__doc__.split("\n")[0])
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared/data/styles")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--compare", type=Path, help="a folder of other models of the same styles")
    p.add_argument("--compare-label", default="before")
    args = p.parse_args(argv)

    styles = load_styles(args.models)
    other = load_styles(args.compare) if args.compare else None
    photos = {n: Image.open(args.eval / f"{n}.png").convert("RGB") for n in PHOTOS}
    first = photos[PHOTOS[0]]

    rows = [[label(Image.new("RGB", TILE, "white"), "")]]
    rows[0] += [label(tile(im), n) for n, im in photos.items()]
    crops = [[label(first.crop(CROP), f"{PHOTOS[0]}, 100 % crop")]]
    compare, borders = [], []
    border_index = PHOTOS.index(BORDER_PHOTO)
    for name in sorted(styles):
        title = styles[name].meta.get("title", name)
        art = label(tile(painting(styles[name], args.styles_dir, name)), title)
        results = [render(styles, name, im) for im in photos.values()]
        rows.append([art] + [label(tile(r), name) for r in results])
        crops[-1].append(label(results[0].crop(CROP), name))
        if len(crops[-1]) == 4:
            crops.append([])
        edges = corners(results[border_index])
        if other is None or name not in other:
            borders.append([label(edges[0], f"{name}, top left"), label(edges[1], "bottom right")])
        else:
            before = corners(render(other, name, photos[BORDER_PHOTO]))
            borders.append(
                [
                    label(before[0], f"{name}, {args.compare_label}"),
                    label(before[1], ""),
                    label(edges[0], f"{name}, now"),
                    label(edges[1], ""),
                ]
            )
            if other[name].meta != styles[name].meta:  # a re-export: the metadata's `created`
                pair = [art]
                for im, now in list(zip(photos.values(), results, strict=True))[:2]:
                    pair += [label(tile(render(other, name, im)), f"{name}, {args.compare_label}")]
                    pair += [label(tile(now), f"{name}, now")]
                compare.append(pair)
        print(name, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    grid(rows).save(args.out / "gallery.jpg", quality=80, optimize=True)
    grid([row for row in crops if row]).save(args.out / "crops.jpg", quality=90, optimize=True)
    per_row = 4 // len(borders[0])
    border_rows = [
        [t for row in borders[i : i + per_row] for t in row]
        for i in range(0, len(borders), per_row)
    ]
    grid(border_rows).save(args.out / "borders.jpg", quality=85, optimize=True)
    if compare:
        grid(compare).save(args.out / "compare.jpg", quality=80, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
