"""The style transfer HTTP function's entry point: the request's way through, its response
headers and its log line. Parsing, routing, models and pixels live in their own modules.

    functions-framework --target stylize --source function/main.py --port 8080

POST / (or /stylize) takes a photo as multipart (`image` file field), JSON (`image` base64) or
a raw `image/*` body and answers with it repainted; GET /styles lists the styles, GET /healthz
reports the provider. Every client mistake is a JSON error with a stable code.

functions-framework executes this file anew for each app it creates (tests create several), so
what depends on the environment (CONFIG, the per-process instance) lives here, not in the
modules it imports, which Python imports once.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import deadlines
import flask
import functions_framework
import json_logs
import memory
import numpy as np
from catalog import Model
from config import Config
from errors import ApiError, as_api_error, not_found
from full_resolution import render
from imaging import (
    MEDIA_TYPES,
    blend,
    check_encodable,
    decode_image,
    encode_image,
    probe_pixels,
    transfer_luminance,
)
from inference import check_setup
from instance import Instance, PerProcess
from params import parse_options
from request_parsing import read_upload
from responses import add_cors, drain_body, error_response, server_timing
from routing import NOT_FOUND_HINT, route
from web import index, painting
from werkzeug.exceptions import HTTPException, NotFound

CONFIG = Config.from_env()
memory.limit_arenas()  # before any request thread exists (see memory.py)
LOG = json_logs.configure()
try:  # misconfigurations fail the start, loudly, before the worker is forked
    check_setup(CONFIG.model_dir, CONFIG.require_gpu, CONFIG.default_style)
except RuntimeError as e:
    raise SystemExit(str(e)) from None


def _build_instance() -> Instance:
    """Reads every model's metadata and builds the default style's session; the other
    sessions are built on their first request (a cold start then costs one session, not one
    per model)."""
    built = Instance(CONFIG)
    registry = built.registry
    fields = {
        "provider": registry.provider,
        "styles": sorted(registry.styles),
        "models": sorted(registry.models),
        "default": registry.get(None).key,
    }
    LOG.info("ready", extra={"fields": fields})
    return built


_instances = PerProcess(_build_instance)
TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def instance() -> Instance:
    """This process's instance (see instance.PerProcess)."""
    return _instances.get()


# Right after gunicorn forks the worker, build its instance in the background.
os.register_at_fork(after_in_child=lambda: _instances.load_in_background(LOG))


@dataclass(frozen=True)
class Stylized:
    """A stylized image and what the response and the log line say about it."""

    body: bytes
    format: str
    as_json: bool  # answer with JSON holding base64 (the request was JSON), else the bytes
    model: Model
    width: int
    height: int
    paint_size: tuple[int, int]  # (w, h) the network painted at (full_resolution.paint_size)
    input_bytes: int
    source_format: str
    timings_ms: dict[str, float]  # decode, infer, encode

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def painted(self) -> str:
        """`WxH` the network painted at, for X-Painted-Size and the log line."""
        return "{}x{}".format(*self.paint_size)

    def log_fields(self) -> dict[str, Any]:
        return {
            "style": self.model.name,
            "arch": self.model.arch,
            "input_bytes": self.input_bytes,
            "width": self.width,
            "height": self.height,
            "painted": self.painted,
            "source_format": self.source_format,
        }


def _stylize(request: flask.Request) -> Stylized:
    t0 = time.perf_counter()
    upload = read_upload(request, CONFIG.max_request_bytes)
    opts = parse_options(upload.fields, max_image_side=CONFIG.max_image_side)
    current = instance()
    model = current.registry.get(opts.style, opts.arch)
    # A bounded number of requests past this point (MAX_QUEUED_REQUESTS beyond the running
    # ones), and of their pixels (MAX_INFLIGHT_PIXELS), so a burst cannot hold unbounded
    # decoded images; the rest wait a bounded time or get 503.
    with current.admission.admit(probe_pixels(upload.image, max_pixels=CONFIG.max_pixels)):
        decoded = decode_image(
            upload.image,
            max_pixels=CONFIG.max_pixels,
            max_side=opts.max_size or CONFIG.max_image_side,
        )
        check_encodable(decoded.rgb.shape[1], decoded.rgb.shape[0], opts.format)
        t1 = time.perf_counter()

        def finish(photo: np.ndarray, painted: np.ndarray) -> np.ndarray:
            if opts.preserve_color:
                painted = transfer_luminance(photo, painted)
            return blend(photo, painted, opts.strength)

        out, paint_size = render(
            decoded.rgb,
            lambda rgb: current.stylize(model, rgb),
            stroke_scale=opts.stroke_scale,
            max_paint_pixels=current.registry.max_paint_pixels(model),
            finish=finish,
        )
        t2 = time.perf_counter()
        body = encode_image(out, decoded.alpha, opts.format, opts.quality)
    t3 = time.perf_counter()
    h, w = decoded.rgb.shape[:2]
    timings = {"decode": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "encode": (t3 - t2) * 1e3}
    return Stylized(
        body, opts.format, upload.as_json, model, w, h, paint_size, len(upload.image),
        decoded.source_format, timings,
    )  # fmt: skip


def _styles(_: flask.Request) -> dict[str, Any]:
    """Each style once, with its archs; from the metadata read at start, so listing the styles
    builds no session."""
    registry = instance().registry
    styles = sorted(registry.styles.values(), key=lambda s: s.name)
    served = {arch for s in styles for arch in s.models}
    # The preferred arch only where some style has it: a folder of johnson-only styles on a CPU
    # must not advertise "fast".
    default_arch = registry.default_arch if registry.default_arch in served else min(served)
    return {
        "default": registry.default,
        "default_arch": default_arch,
        "styles": [s.describe(registry.default_arch) for s in styles],
    }


def _health(_: flask.Request) -> dict[str, Any]:
    registry = instance().registry
    return {"status": "ok", "provider": registry.provider, "styles": len(registry.styles)}


Answer = Stylized | dict[str, Any] | flask.Response
HANDLERS: dict[str, Callable[..., Answer]] = {  # by routing.URL_MAP's endpoint names
    "page": lambda _: index(),
    "stylize": _stylize,
    "styles": _styles,
    "health": _health,
    "thumbnail": lambda _, name: instance().thumbnails.response(name),
    "painting": lambda request, name: painting(request, instance().registry.styles, name),
}


def _respond(answer: Answer, total_ms: float) -> tuple[flask.Response, dict[str, float]]:
    """The response for a handler's answer, and the request's timings (rounded) for the log."""
    stylized = answer.timings_ms if isinstance(answer, Stylized) else {}
    timings = {**stylized, "total": total_ms}  # Server-Timing lists them in this order
    rounded = {k: round(v, 2) for k, v in timings.items()}
    if isinstance(answer, Stylized) and answer.as_json:
        response = flask.jsonify(
            image=base64.b64encode(answer.body).decode("ascii"),
            format=answer.format,
            width=answer.width,
            height=answer.height,
            style=answer.model.name,
            arch=answer.model.arch,
            timings_ms=rounded,
        )
    elif isinstance(answer, Stylized):
        response = flask.Response(answer.body, mimetype=answer.media_type)
    elif isinstance(answer, dict):
        response = flask.jsonify(answer)
    else:
        response = answer
    response.headers["Server-Timing"] = server_timing(timings)
    if isinstance(answer, Stylized):
        response.headers["X-Style-Model"] = answer.model.key
        response.headers["X-Painted-Size"] = answer.painted
    return response, rounded


@functions_framework.errorhandler(HTTPException)
def _not_routed(e: HTTPException) -> flask.Response:
    """Flask refuses a few requests itself, before `stylize` sees them: functions-framework's
    own paths (/robots.txt, /favicon.ico, a path with an encoded newline) and a WebSocket
    upgrade (werkzeug's router answers 400). The API's JSON, not Flask's HTML."""
    if isinstance(e, NotFound):
        error = not_found(f"No such endpoint. {NOT_FOUND_HINT}")
    else:
        status = e.code if e.code and 400 <= e.code < 500 else 400
        error = ApiError(
            status,
            "invalid_request",
            f"The request could not be served ({e.name}); WebSocket and other upgrades are not "
            f"supported. Send a plain HTTP request. {NOT_FOUND_HINT}",
        )
    response = error_response(error)
    response.headers["Server-Timing"] = "total;dur=0.0"
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _request_id(request: flask.Request) -> str:
    """Cloud Run's trace id (`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`, 32 hex digits)
    when the header carries one, so the log joins the trace; anything else a client sent is not
    echoed back: a fresh id."""
    trace = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0]
    return trace.lower() if TRACE_ID.fullmatch(trace) else uuid.uuid4().hex


@functions_framework.http
def stylize(request: flask.Request) -> flask.Response:
    """Entry point (`--target stylize`)."""
    start = time.perf_counter()
    request.max_content_length = CONFIG.max_request_bytes
    request_id = _request_id(request)
    error: ApiError | None = None
    try:
        target = route(request)
        if target.endpoint is None:  # OPTIONS
            answer: Answer = flask.Response(status=204, headers={"Allow": target.allow})
        else:
            with deadlines.limit(
                CONFIG.request_deadline_s, decode_seconds=CONFIG.decode_deadline_s
            ):
                answer = HANDLERS[target.endpoint](request, **target.args)
    except Exception as e:
        error = as_api_error(e, request_id=request_id, max_request_bytes=CONFIG.max_request_bytes)
        if error.code == "internal":
            LOG.error("internal error", exc_info=e, extra={"fields": {"request_id": request_id}})
        answer = error_response(error)
    response, timings = _respond(answer, (time.perf_counter() - start) * 1e3)
    response.headers["X-Request-Id"] = request_id
    response.headers["X-Content-Type-Options"] = "nosniff"  # a JSON error is never run as HTML
    add_cors(request, response, CONFIG.cors_origins)
    drain_body(request, response)
    level = logging.WARNING if response.status_code >= 500 else logging.INFO  # 503: shed load
    LOG.log(
        logging.ERROR if error and error.code == "internal" else level,
        f"{request.method} {request.path[:200]} {response.status_code}",
        extra={
            "fields": {
                "status": response.status_code,
                "error": error.code if error else None,
                "request_id": request_id,
                "timings_ms": timings,
                **(answer.log_fields() if isinstance(answer, Stylized) else {}),
            }
        },
    )
    return response
