"""The catalog of models: which styles exist, in which archs, from each file's metadata alone.

A style comes in up to one model per arch (`NAME.onnx`, johnson, and `NAME.fast.onnx`, fast:
both with metadata name=NAME). A multi-style model (one network, several styles; its metadata
lists them under STYLES_KEY) serves each of its styles. Nothing here builds a session or
imports onnxruntime, so the catalog is safe to read before gunicorn forks its worker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stylefn.contract import ARCHS, PAINTING_KEY, STYLES_KEY, TILES_SUFFIX, style_painting_key
from stylefn.styles.metadata import read_metadata

if TYPE_CHECKING:
    import onnxruntime as ort

PREFERRED_DEFAULT = "starry_night"


class UnknownStyle(LookupError):
    """No model has this style name."""

    def __init__(self, name: str, available: Iterable[str]):
        super().__init__(f"no style named {name!r}")
        self.name = name
        self.available = sorted(available)


@dataclass(frozen=True)
class Painting:
    """The painting's thumbnail, decoded once from the model's metadata."""

    jpeg: bytes
    etag: str


class ArchUnavailable(LookupError):
    """The style exists, but not in the asked arch."""

    def __init__(self, style: str, arch: str, available: Iterable[str], default: str):
        super().__init__(f"style {style!r} has no {arch!r} model")
        self.style = style
        self.arch = arch
        self.available = list(available)
        self.default = default  # what leaving out arch would give


@dataclass(eq=False)
class Model:
    """One ONNX file: one style, or several (`listed`), in one arch. `session` is set once,
    fully built, on first use (registry.StyleRegistry.session); until then it is None."""

    name: str
    arch: str
    path: Path
    metadata: dict[str, str]
    # A multi-style model's styles, in its graph's order, each {name, title, artist, ...};
    # empty for a single-style model
    listed: tuple[dict[str, Any], ...] = ()
    session: ort.InferenceSession | None = field(default=None, repr=False)
    tiles_session: ort.InferenceSession | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def multi_style(self) -> bool:
        return bool(self.listed)

    @cached_property
    def style_names(self) -> tuple[str, ...]:
        """The styles it paints, in its graph's order."""
        return tuple(s["name"] for s in self.listed) if self.listed else (self.name,)

    def style_info(self, style: str) -> dict[str, Any]:
        """Title and artist of one of its styles."""
        if not self.listed:
            return self.metadata
        return next(s for s in self.listed if s["name"] == style)

    @property
    def key(self) -> str:
        """`name/arch`: how responses (X-Style-Model) and logs name the model."""
        return f"{self.name}/{self.arch}"

    @cached_property
    def tiles_path(self) -> Path | None:
        """The model's tile graph (NAME.ARCH.tiles.onnx beside it), if it was exported with one."""
        path = self.path.with_name(self.path.name.removesuffix(".onnx") + TILES_SUFFIX)
        return path if path.is_file() else None

    def painting(self, style: str) -> Painting | None:
        """The embedded painting thumbnail of one of its styles, or None: a model exported
        without one, or whose entry is not a base64 JPEG (then the page shows the stylized
        sample instead)."""
        key = style_painting_key(style) if self.listed else PAINTING_KEY
        encoded = self.metadata.get(key)
        if not encoded:
            return None
        try:
            jpeg = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not jpeg.startswith(b"\xff\xd8\xff"):
            return None
        return Painting(jpeg, hashlib.sha256(jpeg).hexdigest()[:32])

    def describe(self) -> dict[str, Any]:
        """Public per-arch metadata for /styles (the file path never leaves the server)."""
        m = self.metadata
        return {
            "arch": self.arch,
            "precision": m.get("precision", "fp32"),
            "training_steps": int(m["training_steps"]) if m.get("training_steps") else None,
            "loss_net": m.get("loss_net", "unknown"),
            "image_size": int(m["image_size"]) if m.get("image_size") else None,
        }


@dataclass(frozen=True)
class Style:
    name: str
    models: dict[str, Model]  # by arch, in ARCHS order; never empty

    def arch_for(self, preferred: str) -> str:
        """The arch a request that names none gets: the preferred one if this style has it,
        else the one it has."""
        return preferred if preferred in self.models else next(iter(self.models))

    @cached_property
    def painting(self) -> Painting | None:
        """The painting's thumbnail from whichever of the style's models carries one (they
        were trained on the same painting)."""
        found = (m.painting(self.name) for m in self.models.values())
        return next((p for p in found if p), None)

    def describe(self, preferred_arch: str) -> dict[str, Any]:
        default = self.models[self.arch_for(preferred_arch)]
        info = default.style_info(self.name)
        return {
            "name": self.name,
            "title": info.get("title", self.name),
            "artist": info.get("artist", "unknown"),
            # the styles a request without `arch` can mix it with (`style=A:0.5,B:0.5`): those
            # of its default arch's network
            "mixable_with": [n for n in default.style_names if n != self.name],
            "archs": list(self.models),
            "default_arch": self.arch_for(preferred_arch),
            "models": [m.describe() for m in self.models.values()],
            # Relative, like every URL the page uses: it resolves against /styles's own URL as
            # well as the page's, behind a path prefix too.
            "painting_url": f"styles/{quote(self.name, safe='')}/painting.jpg"
            if self.painting
            else None,
        }


def _model(path: Path) -> Model:
    try:
        meta = read_metadata(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RuntimeError(
            f"{path} is not a readable ONNX model ({e}); re-export it with python -m export, "
            "or remove it from MODEL_DIR"
        ) from None
    arch = meta.get("arch") or "johnson"  # models exported before `fast` existed say nothing
    if arch not in ARCHS:
        raise RuntimeError(
            f"{path} has arch {arch!r}, which this function does not serve (it serves "
            f"{', '.join(ARCHS)}); re-export it or remove it from MODEL_DIR"
        )
    try:
        listed = tuple(json.loads(meta[STYLES_KEY])) if STYLES_KEY in meta else ()
        if not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in listed):
            raise ValueError("an entry without a name")
    except ValueError as e:
        raise RuntimeError(
            f"{path} has a malformed {STYLES_KEY!r} metadata entry ({e}); re-export it with "
            "python -m export, or remove it from MODEL_DIR"
        ) from None
    return Model(meta.get("name") or path.stem, arch, path, meta, listed)


def model_paths(model_dir: str | Path) -> list[Path]:
    """Every `*.onnx` but the tile graphs (`*.tiles.onnx`) in `model_dir`, which may name
    several folders separated by ':' (e.g. a mounted Cloud Storage bucket beside the bundled
    models: `/models:/app/models`). A folder may be empty or missing as long as one of them
    has a model."""
    dirs = [Path(d) for d in str(model_dir).split(":") if d]
    paths = [p for d in dirs for p in sorted(d.glob("*.onnx")) if not p.name.endswith(TILES_SUFFIX)]
    if not paths:
        raise RuntimeError(f"no *.onnx style models in {model_dir}; set MODEL_DIR")
    return paths


def load_catalog(paths: Iterable[Path]) -> dict[str, Style]:
    """Every model's metadata (no sessions), grouped by style name; refuses two files that are
    the same style in the same arch, which would leave it to file order which one serves."""
    models: dict[tuple[str, str], Model] = {}
    for model, name in ((m, n) for m in map(_model, paths) for n in m.style_names):
        path = model.path
        other = models.get((name, model.arch))
        if other is not None:
            where = (
                f"{other.path.name} and {path.name} in {path.parent}"
                if other.path.parent == path.parent
                else f"{other.path} and {path}"
            )
            raise RuntimeError(
                f"{where} are both style "
                f"{name!r} in arch {model.arch!r}; a style has at most one model per "
                "arch: remove one, or fix its name/arch metadata when exporting"
            )
        models[(name, model.arch)] = model
    names = sorted({name for name, _ in models})
    return {n: Style(n, {a: models[(n, a)] for a in ARCHS if (n, a) in models}) for n in names}


def choose_default_style(styles: dict[str, Style], configured: str | None) -> str:
    """DEFAULT_STYLE when set (check_setup has made sure it exists), else starry_night if
    present, else the first name."""
    if configured:
        return configured
    return PREFERRED_DEFAULT if PREFERRED_DEFAULT in styles else min(styles)


def find_style(styles: dict[str, Style], name: str) -> Style:
    """The style by its name; raises UnknownStyle."""
    style = styles.get(name)
    if style is None:
        raise UnknownStyle(name, styles)
    return style


def find_model(styles: dict[str, Style], name: str, arch: str | None, default_arch: str) -> Model:
    """The model for a request: `arch` None means the style's default arch."""
    style = find_style(styles, name)
    if arch is None:
        return style.models[style.arch_for(default_arch)]
    model = style.models.get(arch)
    if model is None:
        raise ArchUnavailable(style.name, arch, style.models, style.arch_for(default_arch))
    return model
