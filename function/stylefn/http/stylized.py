"""What a stylize request answers with: the painted image or clip, and what its response and
log line say about it. http/stylize.py makes a Stylized, http/video.py a StylizedVideo; app.py
turns either into the response."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import flask

from stylefn.imaging.encode import MEDIA_TYPES
from stylefn.styles.mix import Choice
from stylefn.video.transcode import MEDIA_TYPE as VIDEO_MEDIA_TYPE


@dataclass(frozen=True)
class Painter:
    """What painted, as the answer and the log name it: a style name or mix and its model's
    arch, or a style image (`style_image:` and the start of its SHA-256) and the method."""

    style: str
    arch: str
    cached: bool | None = None  # a style image's statistics were cached; None: a named style

    @classmethod
    def of(cls, choice: Choice) -> Painter:
        return cls(choice.mix.label, choice.model.arch)

    @property
    def key(self) -> str:
        """`style/arch` (or `A:0.6,B:0.4/arch`): X-Style-Model."""
        return f"{self.style}/{self.arch}"


@dataclass(frozen=True)
class Stylized:
    """A stylized image."""

    body: bytes
    format: str
    as_json: bool  # answer with JSON holding base64 (the request was JSON), else the bytes
    painter: Painter
    width: int
    height: int
    paint_size: tuple[int, int]  # (w, h) the network painted at (full_resolution.paint_size)
    input_bytes: int
    source_format: str
    timings_ms: dict[str, float]  # decode, infer, encode (a video: infer, all interleaved)
    kind: ClassVar[str] = "image"  # the JSON answer's key for the base64 body

    @property
    def painted(self) -> str:
        """`WxH` the network painted at, for X-Painted-Size and the log line."""
        return "{}x{}".format(*self.paint_size)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    def json_fields(self, timings_ms: dict[str, float]) -> dict[str, Any]:
        return {
            self.kind: base64.b64encode(self.body).decode("ascii"),
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "style": self.painter.style,
            "arch": self.painter.arch,
            "timings_ms": timings_ms,
        } | self._cache_field()

    def headers(self) -> dict[str, str]:
        headers = {"X-Style-Model": self.painter.key, "X-Painted-Size": self.painted}
        if self.painter.cached is not None:
            headers["X-Style-Image-Cache"] = "hit" if self.painter.cached else "miss"
        return headers

    def _cache_field(self) -> dict[str, bool]:
        cached = self.painter.cached
        return {} if cached is None else {"style_image_cached": cached}

    def response(self, timings_ms: dict[str, float]) -> flask.Response:
        """The body, or JSON holding it when the request was JSON; `timings_ms` (rounded, the
        total included) go in that JSON."""
        if self.as_json:
            response = flask.jsonify(self.json_fields(timings_ms))
        else:
            response = flask.Response(self.body, mimetype=self.media_type)
        response.headers.update(self.headers())
        return response

    def log_fields(self) -> dict[str, Any]:
        return {
            "style": self.painter.style,
            "arch": self.painter.arch,
            "input_bytes": self.input_bytes,
            "width": self.width,
            "height": self.height,
            "painted": self.painted,
            "source_format": self.source_format,
        } | self._cache_field()


@dataclass(frozen=True)
class StylizedVideo(Stylized):
    """A stylized clip: an MP4 (`format` "mp4"), and its frame count, rate and sound."""

    frames: int
    rate: Fraction
    audio: bool
    kind: ClassVar[str] = "video"

    @property
    def media_type(self) -> str:
        return VIDEO_MEDIA_TYPE

    def json_fields(self, timings_ms: dict[str, float]) -> dict[str, Any]:
        extra = {"frames": self.frames, "fps": float(self.rate), "audio": self.audio}
        return super().json_fields(timings_ms) | extra

    def headers(self) -> dict[str, str]:
        return super().headers() | {"X-Frames": str(self.frames)}

    def log_fields(self) -> dict[str, Any]:
        return super().log_fields() | {"frames": self.frames}
