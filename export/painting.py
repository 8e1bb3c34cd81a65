"""The painting's thumbnail a model carries in its own metadata (`painting_jpeg`).

Why in the model: a model file is the unit that gets served (bundled, or from a bucket beside
the bundled ones), and the page shows each style's painting. Embedded, the thumbnail always
goes with its model and the function needs no second file per style, nor ever the painting.
A small JPEG (longest side 256 px, a few tens of kB of base64) next to a 1.7 MB graph.
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

from PIL import Image, ImageOps

from stylefn.contract import PAINTING_KEY, style_painting_key  # the keys the function reads
from training.errors import UsageError
from training.styles import sha256_file

log = logging.getLogger("export")

THUMBNAIL_SIDE = 256  # twice a card's width on the page, so it stays sharp on a phone
QUALITIES = (85, 75, 65)  # the first that fits MAX_BYTES
MAX_BYTES = 48 * 1024  # of JPEG; every model's metadata is read at start


def painting_thumbnail(path: Path, side: int = THUMBNAIL_SIDE) -> str:
    """Base64 of a JPEG of the image at `path`, shrunk (never enlarged) to `side` px on its
    longest side."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale, much faster
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, ValueError) as e:  # missing, unreadable, not an image
        raise UsageError(f"--painting {path}: cannot read it as an image ({e})") from None
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    for quality in QUALITIES:
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=quality, optimize=True)
        if buf.tell() <= MAX_BYTES:
            break
    return base64.b64encode(buf.getvalue()).decode("ascii")


def check_painting(path: Path, expected_sha256: str) -> None:
    """Refuse a painting other than the one the model was trained on: the page would show the
    wrong picture for the style."""
    if not path.is_file():
        raise UsageError(f"--painting {path}: no such file")
    got = sha256_file(path)
    if got != expected_sha256:
        raise UsageError(
            f"--painting {path}: its sha256 is {got[:12]}..., but the model was trained on a "
            f"style image with sha256 {expected_sha256[:12]}... (style_image_sha256); "
            "pass the painting it was trained on"
        )


def find_by_hash(candidates: list[Path], sha256: str) -> Path | None:
    return next((p for p in candidates if p.is_file() and sha256_file(p) == sha256), None)


def painting_props(meta: dict, painting: Path | None) -> dict[str, str]:
    """The metadata entries for a checkpoint's export: each style's painting thumbnail.

    A single-style model's (PAINTING_KEY) comes from `painting` (checked against the
    checkpoint's style image hash), else from the image the checkpoint was trained on if that
    path is on this machine and unchanged. A multi-style model's (style_painting_key(name)) come from
    the images in the folder `painting` whose hashes match, else from the paths the checkpoint
    names, else from the thumbnails a checkpoint unpacked from a model carries (by hash). What
    cannot be found is left out, with a warning."""
    styles = meta["styles"]
    if len(styles) == 1 and painting is not None and not painting.is_dir():
        check_painting(painting, styles[0]["sha256"])
        return {PAINTING_KEY: painting_thumbnail(painting)}
    props, missing = {}, []
    for style in styles:
        trained_on = style.get("path") or meta.get("train_config", {}).get("style")
        candidates = [Path(trained_on)] if isinstance(trained_on, str) else []
        if painting is not None:
            candidates = sorted(painting.iterdir()) + candidates
        found = find_by_hash(candidates, style["sha256"])
        carried = meta.get("thumbnails", {}).get(style["sha256"])
        if found is None and carried is None:
            missing.append(style["name"])
            continue
        key = PAINTING_KEY if len(styles) == 1 else style_painting_key(style["name"])
        props[key] = painting_thumbnail(found) if found is not None else carried
    if missing:
        log.warning(
            "exporting without the painting thumbnails of %s (no image with its hash where the "
            "checkpoint trained, nor in --painting): the web page will show a stylized sample "
            "instead; pass --painting STYLE_IMAGE_OR_FOLDER, or add it later with "
            "python -m export.add_painting",
            ", ".join(missing),
        )
    return props
