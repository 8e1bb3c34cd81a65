"""Add (or replace) the painting's thumbnail in existing ONNX models, in place.

    python -m export.add_painting function/models/starry_night.fast.onnx \
        --painting ../shared/data/styles/starry_night.jpg
    python -m export.add_painting function/models/*.onnx --painting ../shared/data/styles

For models exported before the thumbnail existed, or where the style image was not on the
exporting machine. Only the `painting_jpeg` metadata entry changes; the graph is not touched.
`--painting` is the style image, or a folder of them: each model then gets the image in it
whose sha256 is the model's `style_image_sha256`. A painting that is not the one the model was
trained on is refused. Each file is replaced atomically (written beside it, then renamed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import onnx

from export.painting import PAINTING_KEY, check_painting, painting_thumbnail, sha256_file
from training.errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def find_painting(folder: Path, sha256: str) -> Path:
    """The image in `folder` with this sha256."""
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES and sha256_file(path) == sha256:
            return path
    raise UsageError(
        f"--painting {folder}: no image in it has the model's style_image_sha256 "
        f"{sha256[:12]}...; pass the painting it was trained on"
    )


def add_painting(model_path: Path, painting: Path) -> Path:
    """Embed the thumbnail of `painting` (a file, or a folder to find it in) in `model_path`;
    returns the painting used."""
    try:
        model = onnx.load(str(model_path))
    except Exception as e:  # OSError, or protobuf's DecodeError (its stubs are not ours to add)
        raise UsageError(f"{model_path}: not a readable ONNX model ({e})") from None
    props = {p.key: p.value for p in model.metadata_props}
    expected = props.get("style_image_sha256")
    if not expected:
        raise UsageError(
            f"{model_path} has no style_image_sha256 metadata, so which painting it was "
            "trained on cannot be checked; re-export it with python -m export --painting"
        )
    if painting.is_dir():
        painting = find_painting(painting, expected)
    check_painting(painting, expected)
    # Set in place, not appended: a second run replaces the entry, and the others keep their
    # order. Nothing else in the model is touched.
    entry = next((p for p in model.metadata_props if p.key == PAINTING_KEY), None)
    if entry is None:
        entry = model.metadata_props.add(key=PAINTING_KEY)
    entry.value = painting_thumbnail(painting)
    tmp = model_path.with_name(model_path.name + ".tmp")
    try:
        onnx.save(model, str(tmp))
        os.chmod(tmp, model_path.stat().st_mode & 0o7777)  # a read-only bundle stays so
        os.replace(tmp, model_path)
    finally:
        tmp.unlink(missing_ok=True)
    return painting


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.add_painting", description=__doc__.split("\n")[0]
    )
    p.add_argument("models", nargs="+", type=Path, help="MODEL.onnx files, changed in place")
    p.add_argument(
        "--painting",
        required=True,
        type=Path,
        help="the style image the model was trained on, or a folder holding it (matched by sha256)",
    )
    args = p.parse_args(argv)
    failed = 0
    for model in args.models:
        try:
            used = add_painting(model, args.painting)
        except UsageError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{model}: painting thumbnail from {used}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
