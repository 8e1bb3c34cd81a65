"""A request's style: one name, or a mix of styles of one network, `starry_night:0.6,udnie:0.4`.

A multi-style network (conditional instance norm) paints a mix by blending its styles' norm
parameters with the weights given (normalised to sum to 1). Styles of different networks
cannot be mixed: each network has its own convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stylefn.contract import STYLE_WEIGHTS_INPUT
from stylefn.styles.catalog import Model, Style, find_model

MAX_PARTS = 16


class BadMix(ValueError):
    """The style field is not a name nor a NAME:WEIGHT,... mix."""


class Unmixable(ValueError):
    """The mix names styles of different networks."""

    def __init__(self, networks: Mapping[str, str]):
        self.networks = dict(networks)  # style name -> its network (model file stem)
        super().__init__(f"styles of different networks: {self.networks}")


@dataclass(frozen=True)
class Mix:
    """Style names with weights that sum to 1, in the order given."""

    parts: tuple[tuple[str, float], ...]

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.parts]

    @property
    def label(self) -> str:
        """How responses and logs name it: the name alone, or NAME:WEIGHT,... rounded."""
        if len(self.parts) == 1:
            return self.parts[0][0]
        return ",".join(f"{n}:{w:.3g}" for n, w in self.parts)


def parse_mix(value: str | Mapping[str, object]) -> Mix:
    """`name`, `name:w,name:w,...` (text), or {name: w, ...} (a JSON object). Raises BadMix."""
    if isinstance(value, str):
        items: list[tuple[str, object]] = []
        for part in value.split(","):
            name, sep, text = part.partition(":")
            items.append((name.strip(), text.strip() if sep else "1"))
    else:
        items = [(str(k).strip(), v) for k, v in value.items()]
    if not items or len(items) > MAX_PARTS:
        raise BadMix(f"a mix names 1 to {MAX_PARTS} styles; got {len(items)}")
    weights: list[tuple[str, float]] = []
    for name, raw in items:
        if not name:
            raise BadMix("a style name is empty (write NAME or NAME:WEIGHT,NAME:WEIGHT)")
        try:
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError
            weight = float(raw)
        except (ValueError, OverflowError):
            raise BadMix(
                f"the weight of {name[:64]!r} must be a number; got {str(raw)[:40]!r}"
            ) from None
        if not (math.isfinite(weight) and weight >= 0):
            raise BadMix(f"the weight of {name[:64]!r} must be 0 or more; got {str(raw)[:40]!r}")
        weights.append((name, weight))
    names = [n for n, _ in weights]
    if len(set(names)) < len(names):
        raise BadMix("a style is named twice in the mix")
    total = sum(w for _, w in weights)
    if total <= 0:
        raise BadMix("the weights add up to 0; give at least one style a positive weight")
    return Mix(tuple((n, w / total) for n, w in weights if w > 0))


@dataclass(frozen=True)
class Choice:
    """What a request paints with: one model, and for a multi-style model the weight of each
    of its styles, (S,) float32, that its graph takes (None: a single-style model)."""

    model: Model
    mix: Mix

    @property
    def key(self) -> str:
        """`style/arch` (or `A:0.6,B:0.4/arch`): how responses (X-Style-Model) and logs name it."""
        return f"{self.mix.label}/{self.model.arch}"

    @property
    def weights(self) -> np.ndarray | None:
        if not self.model.multi_style:
            return None
        weights = np.zeros(len(self.model.style_names), np.float32)
        for name, weight in self.mix.parts:
            weights[self.model.style_names.index(name)] = weight
        return weights


def choose(styles: dict[str, Style], mix: Mix, arch: str | None, default_arch: str) -> Choice:
    """The one model that paints every style of `mix` in `arch` (None: their default arch).
    Raises catalog.UnknownStyle, catalog.ArchUnavailable or Unmixable."""
    models = {name: find_model(styles, name, arch, default_arch) for name in mix.names}
    first = next(iter(models.values()))
    if any(m is not first for m in models.values()):
        raise Unmixable({name: m.path.stem for name, m in models.items()})
    return Choice(first, mix)


def one_style_feed(session: Any) -> dict[str, np.ndarray]:
    """What a session's graph takes besides the image to paint one style: a one-hot of its first
    style for a multi-style graph, nothing for a single-style one (tools and benchmarks that run
    a model file directly, without the catalog)."""
    for i in session.get_inputs():
        if i.name == STYLE_WEIGHTS_INPUT:
            return {STYLE_WEIGHTS_INPUT: np.eye(1, i.shape[0], dtype=np.float32)[0]}
    return {}
