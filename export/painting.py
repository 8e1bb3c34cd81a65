"""The painting's thumbnail a model carries in its own metadata (`painting_jpeg`).

Why in the model: a model file is the unit that gets served (bundled, or from a bucket beside
the bundled ones), and the page shows each style's painting. Embedded, the thumbnail always
goes with its model and the function needs no second file per style, nor ever the painting.
A small JPEG (longest side 256 px, a few tens of kB of base64) next to a 1.7 MB graph.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from pathlib import Path

from PIL import Image, ImageOps

from stylefn.contract import PAINTING_KEY  # the metadata key the function reads
from training.errors import UsageError

log = logging.getLogger("export")

THUMBNAIL_SIDE = 256  # twice a card's width on the page, so it stays sharp on a phone
QUALITIES = (85, 75, 65)  # the first that fits MAX_BYTES
MAX_BYTES = 48 * 1024  # of JPEG; every model's metadata is read at start


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def painting_props(meta: dict, painting: Path | None) -> dict[str, str]:
    """The metadata entry for a checkpoint's export: the thumbnail of `painting` (checked
    against the checkpoint's style image hash), else of the style image the checkpoint was
    trained on if that path is on this machine and unchanged, else nothing, with a warning."""
    expected = meta["style_image_sha256"]
    if painting is not None:
        check_painting(painting, expected)
        return {PAINTING_KEY: painting_thumbnail(painting)}
    trained_on = meta.get("train_config", {}).get("style")
    path = Path(trained_on) if trained_on else None
    if path is not None and path.is_file() and sha256_file(path) == expected:
        return {PAINTING_KEY: painting_thumbnail(path)}
    why = (
        "the checkpoint names none"
        if path is None
        else f"{path} is missing or not the image it was trained on"
    )
    log.warning(
        "exporting without the painting's thumbnail (%s): the web page will show a stylized "
        "sample instead; pass --painting STYLE_IMAGE, or add it later with "
        "python -m export.add_painting",
        why,
    )
    return {}
