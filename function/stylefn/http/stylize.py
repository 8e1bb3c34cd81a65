"""POST / (or /stylize): the photo read, its options checked, the work admitted, then decoded,
painted at the size its strokes ask for, brought to full size, finished and encoded. A video
goes to http/video.py."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import flask

from stylefn.http.context import Context
from stylefn.http.options import parse_options
from stylefn.http.upload import read_upload
from stylefn.http.video import StylizedVideo, stylize_video
from stylefn.imaging.decode import decode_image, probe_pixels
from stylefn.imaging.encode import MEDIA_TYPES, check_encodable, encode_image
from stylefn.imaging.full_resolution import render
from stylefn.imaging.upsample import Finish
from stylefn.styles.mix import Choice


@dataclass(frozen=True)
class Stylized:
    """A stylized image and what the response and the log line say about it."""

    body: bytes
    format: str
    as_json: bool  # answer with JSON holding base64 (the request was JSON), else the bytes
    choice: Choice  # the model, and the mix of its styles
    width: int
    height: int
    paint_size: tuple[int, int]  # (w, h) the network painted at (full_resolution.paint_size)
    input_bytes: int
    source_format: str
    timings_ms: dict[str, float]  # decode, infer, encode

    @property
    def painted(self) -> str:
        """`WxH` the network painted at, for X-Painted-Size and the log line."""
        return "{}x{}".format(*self.paint_size)

    def response(self, timings_ms: dict[str, float]) -> flask.Response:
        """The image, or JSON holding it when the request was JSON; `timings_ms` (rounded,
        the total included) go in that JSON."""
        if self.as_json:
            response = flask.jsonify(
                image=base64.b64encode(self.body).decode("ascii"),
                format=self.format,
                width=self.width,
                height=self.height,
                style=self.choice.mix.label,
                arch=self.choice.model.arch,
                timings_ms=timings_ms,
            )
        else:
            response = flask.Response(self.body, mimetype=MEDIA_TYPES[self.format])
        response.headers["X-Style-Model"] = self.choice.key
        response.headers["X-Painted-Size"] = self.painted
        return response

    def log_fields(self) -> dict[str, Any]:
        return {
            "style": self.choice.mix.label,
            "arch": self.choice.model.arch,
            "input_bytes": self.input_bytes,
            "width": self.width,
            "height": self.height,
            "painted": self.painted,
            "source_format": self.source_format,
        }


def stylize(ctx: Context, request: flask.Request) -> Stylized | StylizedVideo:
    config = ctx.config
    t0 = time.perf_counter()
    upload = read_upload(request, config.max_request_bytes)
    if upload.kind == "video":
        return stylize_video(ctx, upload)
    opts = parse_options(upload.fields, max_image_side=config.max_image_side)
    current = ctx.instance()
    choice = current.registry.get(opts.style, opts.arch)
    # A bounded number of requests past this point (MAX_QUEUED_REQUESTS beyond the running
    # ones), and of their pixels (MAX_INFLIGHT_PIXELS), so a burst cannot hold unbounded
    # decoded images; the rest wait a bounded time or get 503.
    with current.admission.admit(probe_pixels(upload.data, max_pixels=config.max_pixels)):
        decoded = decode_image(
            upload.data,
            max_pixels=config.max_pixels,
            max_side=opts.max_size or config.max_image_side,
        )
        check_encodable(decoded.rgb.shape[1], decoded.rgb.shape[0], opts.format)
        t1 = time.perf_counter()
        finish = Finish(opts.strength, opts.preserve_color)
        out, paint_size = render(
            decoded.rgb,
            lambda rgb: current.stylize(choice, rgb),
            lambda photo, painted, small: current.upsample(photo, painted, small, finish),
            stroke_scale=opts.stroke_scale,
            max_paint_pixels=current.registry.max_paint_pixels(choice.model),
        )
        t2 = time.perf_counter()
        body = encode_image(out, decoded.alpha, opts.format, opts.quality)
    t3 = time.perf_counter()
    h, w = decoded.rgb.shape[:2]
    timings = {"decode": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "encode": (t3 - t2) * 1e3}
    return Stylized(
        body, opts.format, upload.as_json, choice, w, h, paint_size, len(upload.data),
        decoded.source_format, timings,
    )  # fmt: skip
