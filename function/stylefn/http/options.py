"""Request options: the same fields from a form, a query string or a JSON body, validated."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stylefn.contract import ARCHS
from stylefn.http.errors import invalid_parameter
from stylefn.imaging.encode import MEDIA_TYPES
from stylefn.styles.mix import BadMix, Mix, parse_mix

FIELDS = (
    "style",
    "arch",
    "strength",
    "stroke_scale",
    "preserve_color",
    "max_size",
    "format",
    "quality",
)
STROKE_SCALES = (0.25, 4.0)  # 4x smaller strokes than the default .. 4x larger
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Options:
    style: Mix | None = None  # a name or a mix of one network's styles; None: the default
    arch: str | None = None  # None: the style's default arch (DEFAULT_ARCH, else by provider)
    strength: float = 1.0
    # How large the strokes are relative to the image: 1 paints them as on a 1024 px result
    # whatever the photo's size, 2 twice as large, 0.5 half (full_resolution.paint_size).
    stroke_scale: float = 1.0
    preserve_color: bool = False
    max_size: int | None = None  # None: the photo's own size
    format: str = "jpeg"
    quality: int = 90


def _number(name: str, value: Any, kind: type) -> float | int:
    """Numbers from JSON come typed; from forms and query strings they come as text."""
    expected = "a number" if kind is float else "an integer"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise invalid_parameter(f"{name} must be {expected}; got {type(value).__name__}.")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: a JSON integer too big for a float
        raise invalid_parameter(f"{name} must be {expected}; got {str(value)[:40]!r}.") from None
    if kind is int:
        if not number.is_integer():  # also refuses nan and inf
            raise invalid_parameter(f"{name} must be {expected}; got {str(value)[:40]!r}.")
        return int(number)
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise invalid_parameter(f"{name} must be true or false; got {str(value)[:40]!r}.")


def parse_options(values: Mapping[str, Any], *, max_image_side: int) -> Options:
    """Validate every field; unknown fields are refused so a typo does not pass silently."""
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        shown = ", ".join(repr(str(k)[:40]) for k in unknown[:5])  # a garbled form name is None
        raise invalid_parameter(
            f"Unknown field {shown}. Accepted fields: image, {', '.join(FIELDS)}."
        )
    opts: dict[str, Any] = {}
    if "style" in values:
        style = values["style"]
        if not isinstance(style, (str, dict)):
            raise invalid_parameter(
                f"style must be a style name or a mix; got {type(style).__name__}."
            )
        if style if isinstance(style, dict) else style.strip():
            try:
                opts["style"] = parse_mix(style)
            except BadMix as e:
                raise invalid_parameter(
                    f"style must be a style name, or a mix of styles with weights (0 or more, "
                    f"normalised to sum to 1) such as starry_night:0.6,the_scream:0.4 (in JSON "
                    f'also {{"starry_night": 0.6, "the_scream": 0.4}}): {e}.'
                ) from None
    if "arch" in values:
        arch = values["arch"]
        arch = arch.strip().lower() if isinstance(arch, str) else arch
        if not isinstance(arch, str) or arch not in (*ARCHS, ""):  # a JSON list: unhashable
            raise invalid_parameter(
                f"arch must be one of {', '.join(ARCHS)} (or left out for the style's default); "
                f"got {str(arch)[:40]!r}."
            )
        opts["arch"] = arch or None
    if "strength" in values:
        strength = _number("strength", values["strength"], float)
        if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
            raise invalid_parameter(f"strength must be between 0 and 1; got {strength}.")
        opts["strength"] = strength
    if "stroke_scale" in values:
        scale = _number("stroke_scale", values["stroke_scale"], float)
        low, high = STROKE_SCALES
        if not (math.isfinite(scale) and low <= scale <= high):
            raise invalid_parameter(
                f"stroke_scale must be between {low:g} and {high:g} (1: strokes as on a 1024 px "
                f"result, 2: twice as large); got {scale:.6g}."
            )
        opts["stroke_scale"] = scale
    if "preserve_color" in values:
        opts["preserve_color"] = _bool("preserve_color", values["preserve_color"])
    if "max_size" in values:
        max_size = _number("max_size", values["max_size"], int)
        if not 1 <= max_size <= max_image_side:
            raise invalid_parameter(
                f"max_size must be an integer from 1 to {max_image_side} (this instance's "
                f"MAX_IMAGE_SIDE); got {max_size:.6g}."  # 1e308 is an integer too: keep it short
            )
        opts["max_size"] = max_size
    if "format" in values:
        fmt = values["format"]
        fmt = fmt.strip().lower() if isinstance(fmt, str) else fmt
        fmt = "jpeg" if fmt == "jpg" else fmt
        if not isinstance(fmt, str) or fmt not in MEDIA_TYPES:  # a JSON list or object: unhashable
            raise invalid_parameter(
                f"format must be one of jpeg, png, webp; got {str(fmt)[:40]!r}."
            )
        opts["format"] = fmt
    if "quality" in values:
        quality = _number("quality", values["quality"], int)
        if not 1 <= quality <= 100:
            raise invalid_parameter(f"quality must be an integer from 1 to 100; got {quality:.6g}.")
        opts["quality"] = quality
    return Options(**opts)
