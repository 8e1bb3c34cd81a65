"""Training photos: any folder tree of images, resized, randomly cropped and flipped."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from training.errors import UsageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def load_rgb(path: Path) -> Image.Image:
    """Decode fully, apply EXIF orientation, convert to RGB (greyscale, CMYK, palette...)."""
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).convert("RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float32 in 0..255."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / min(w, h)
    return img.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BICUBIC
    )


def _is_readable(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))  # JPEG decodes at 1/8 scale: still reads every byte
            img.load()
        return True
    except Exception as e:  # Pillow raises many types for broken files
        log.warning("skipping unreadable image %s (%s)", path, e)
        return False


def find_images(root: str | Path) -> list[Path]:
    """Every readable image under `root`, recursively, sorted; bad files skipped with a warning."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--data {root}: not a folder of photos")
    candidates = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    paths = [p for p in candidates if _is_readable(p)]
    if len(paths) < len(candidates):
        log.warning(
            "skipped %d of %d image files under %s",
            len(candidates) - len(paths),
            len(candidates),
            root,
        )
    if not paths:
        raise UsageError(
            f"--data {root}: no readable images ({', '.join(IMAGE_EXTENSIONS)}) found, recursively"
        )
    return paths


class PhotoDataset(Dataset):
    """(3, S, S) float 0..255 crops: shorter side resized to S, random crop, random flip."""

    def __init__(self, paths: list[Path], image_size: int):
        self.paths = paths
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        s = self.image_size
        img = resize_shorter(load_rgb(self.paths[index]), s)
        w, h = img.size
        # torch's RNG, so DataLoader's per-worker seeding makes crops reproducible.
        x0 = int(torch.randint(0, w - s + 1, ()))
        y0 = int(torch.randint(0, h - s + 1, ()))
        img = img.crop((x0, y0, x0 + s, y0 + s))
        if torch.rand(()) < 0.5:
            img = ImageOps.mirror(img)
        return to_tensor(img)


def center_crops(paths: list[Path], image_size: int) -> torch.Tensor:
    """Deterministic (N, 3, S, S) crops, for the progress samples."""
    crops = []
    for p in paths:
        img = resize_shorter(load_rgb(p), image_size)
        crops.append(to_tensor(ImageOps.fit(img, (image_size, image_size))))
    return torch.stack(crops)


def load_style_image(
    path: str | Path, size: int | None, trim: tuple[float, float, float, float] | None = None
) -> torch.Tensor:
    """(1, 3, H, W) float 0..255; `trim`'s fractions (left, top, right, bottom) cut off, then
    the longer side resized to `size` when given."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--style {path}: no such file")
    try:
        img = load_rgb(path)
    except Exception as e:
        raise UsageError(f"--style {path}: not a readable image ({e})") from e
    if trim:
        left, top, right, bottom = trim
        w, h = img.size
        img = img.crop(
            (round(left * w), round(top * h), w - round(right * w), h - round(bottom * h))
        )
    if size:
        img = ImageOps.contain(img, (size, size), Image.Resampling.LANCZOS)
    return to_tensor(img).unsqueeze(0)
