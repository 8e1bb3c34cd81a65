"""Which paintings a run learns, each with its resolved loss settings.

`--style` takes painting files (NAME=FILE names the style), and folders of them. A painting named in training.paintings'
CATALOG brings its own settings; the command line's explicit flags win over them, and the loss
network's defaults fill in the rest. The list's order is the network's style order.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from training import data
from training.errors import UsageError
from training.loss_nets import LossDefaults
from training.paintings import BY_NAME

DEFAULT_STYLE_SIZE = 512


@dataclass(frozen=True)
class StyleEntry:
    """One style of a network, as its checkpoint records it."""

    name: str
    title: str
    artist: str
    path: str
    sha256: str
    style_size: int  # the painting's longer side in training; 0: as is
    style_layers: str  # NAME:W,...
    style_weight: float
    content_weight: float
    trim: tuple[float, float, float, float] | None = None  # paintings.Painting.trim

    def to_dict(self) -> dict:
        return asdict(self)


def parse_style_layers(spec: str) -> dict[str, float]:
    weights = {}
    for item in spec.split(","):
        name, _, weight = item.partition(":")
        weights[name.strip()] = float(weight or 1.0)
    return weights


def format_style_layers(layers: dict[str, float]) -> str:
    return ",".join(f"{k}:{v:g}" for k, v in layers.items())


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def painting_files(specs: list[str]) -> list[tuple[str, Path]]:
    """(style name, file) for --style values: files (named by their stem, or NAME=FILE) or
    folders (their images, sorted by name), in order."""
    files: list[tuple[str, Path]] = []
    for spec in specs:
        name, _, rest = spec.partition("=")
        named = bool(rest) and name.isidentifier()
        path = Path(rest if named else spec)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in data.IMAGE_EXTENSIONS)
            if not found:
                raise UsageError(f"--style {path}: a folder with no images in it")
            files += [(p.stem, p) for p in found]
        elif path.is_file():
            files.append((name if named else path.stem, path))
        else:
            raise UsageError(f"--style {path}: no such file or folder")
    names = [n for n, _ in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"--style: two paintings are named {twice}; style names must differ")
    return files


def resolve(
    specs: list[str],
    defaults: LossDefaults,
    *,
    style_size: int | None,
    style_layers: str | None,
    style_weight: float | None,
    content_weight: float | None,
    style_scale: float = 1.0,
) -> list[StyleEntry]:
    """The run's styles: each painting's settings from the command line, else the catalog,
    else the loss network's defaults; every style weight then times `style_scale`, which paints
    harder (or softer) while keeping the paintings' weights relative to each other."""
    if not style_scale > 0:
        raise UsageError(
            f"--style-scale {style_scale}: give a number above 0 (1 keeps the weights)"
        )
    given = {
        "style_size": style_size,
        "style_layers": style_layers,
        "style_weight": style_weight,
        "content_weight": content_weight,
    }
    fallback = {
        "style_size": DEFAULT_STYLE_SIZE,
        "style_layers": format_style_layers(defaults.style_layers),
        "style_weight": defaults.style_weight,
        "content_weight": defaults.content_weight,
    }
    entries = []
    for name, path in painting_files(specs):
        painting = BY_NAME.get(name)
        own = painting.loss_overrides() if painting else {}
        settings = {k: given[k] if given[k] is not None else own.get(k, fallback[k]) for k in given}
        # normalised spelling, so a checkpoint records what was used
        settings["style_layers"] = format_style_layers(
            parse_style_layers(str(settings["style_layers"]))
        )
        entries.append(
            StyleEntry(
                name=name,
                title=painting.title if painting else name.replace("_", " ").title(),
                artist=painting.artist if painting else "unknown",
                path=str(path),
                sha256=sha256_file(path),
                style_size=int(settings["style_size"]),  # type: ignore[call-overload]
                style_layers=str(settings["style_layers"]),
                style_weight=float(settings["style_weight"]) * style_scale,  # type: ignore[arg-type]
                content_weight=float(settings["content_weight"]),  # type: ignore[arg-type]
                trim=painting.trim if painting else None,
            )
        )
    return entries
