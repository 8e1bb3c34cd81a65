"""The style transfer HTTP function: routing, request parsing, responses and logs; no pixels here.

    functions-framework --target stylize --source function/main.py --port 8080

POST / (or /stylize) takes a photo as multipart (`image` file field), JSON (`image` base64) or
a raw `image/*` body and answers with it repainted; GET /styles lists the styles, GET /healthz
reports the provider. Every client mistake is a JSON error with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass

import flask
import functions_framework
from config import Config
from errors import ApiError, invalid_image, invalid_parameter
from imaging import MEDIA_TYPES, decode_image, encode_image, transfer_luminance
from inference import StyleRegistry, blend, check_setup
from params import parse_options
from web import Thumbnails, index, thumbnail_style
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

RAW_IMAGE_TYPES = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
    "image/bmp", "image/x-ms-bmp", "image/tiff", "application/octet-stream",
}  # fmt: skip
STYLIZE_PATHS = ("/", "/stylize")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: Cloud Logging reads `severity` and `message` from it."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["message"] += "\n" + "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


class StdoutHandler(logging.Handler):
    """Writes each record to the current sys.stdout, which Cloud Run collects as the log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def _make_logger() -> logging.Logger:
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("stylize", "inference"):  # inference.py logs session builds and CUDA fallback
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logging.getLogger("stylize")


CONFIG = Config.from_env()
LOG = _make_logger()
try:  # misconfigurations fail the start, loudly, before the worker is forked
    check_setup(CONFIG.model_dir, CONFIG.require_gpu, CONFIG.default_style)
except RuntimeError as e:
    raise SystemExit(str(e)) from None


@dataclass(frozen=True)
class Instance:
    """What each serving process builds once and all its request threads share."""

    registry: StyleRegistry
    thumbnails: Thumbnails


_instances: dict[int, Instance] = {}
_instances_lock = threading.Lock()


def instance() -> Instance:
    """This process's style registry, built on first use in the process that serves. It reads
    every model's metadata and builds the default style's session; the other sessions are built
    on their first request (a cold start then costs one session, not one per model).

    Never before a fork: functions-framework imports this module in gunicorn's master process,
    which then forks the worker, and ONNX Runtime's thread pools and CUDA contexts do not
    survive a fork (the worker's runs lose their threads, and CUDA fails outright).
    """
    pid = os.getpid()
    with _instances_lock:
        if pid not in _instances:
            registry = StyleRegistry(
                CONFIG.model_dir,
                default_style=CONFIG.default_style,
                default_arch=CONFIG.default_arch,
                require_gpu=CONFIG.require_gpu,
                max_concurrent_runs=CONFIG.max_concurrent_runs,
                queue_timeout_s=CONFIG.queue_timeout_s,
                max_queued_requests=CONFIG.max_queued_requests,
            )
            _instances.clear()
            _instances[pid] = Instance(registry, Thumbnails(registry))
            fields = {
                "provider": registry.provider,
                "styles": sorted(registry.styles),
                "models": sorted(registry.models),
                "default": registry.get(None).key,
            }
            LOG.info("ready", extra={"fields": fields})
        return _instances[pid]


def _load_in_new_worker() -> None:
    """Right after gunicorn forks the worker, build the registry (and the default style's
    session) in the background so the first request does not pay for it. A worker that cannot load them (REQUIRE_GPU=1 without a
    working CUDA provider, a broken model) exits with gunicorn's boot-error status, which stops
    the whole server: better a failed start than an instance that answers 500s."""

    def load() -> None:
        try:
            instance()
        except BaseException:
            LOG.critical("could not load the style models", exc_info=True)
            os._exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master halts

    threading.Thread(target=load, name="load-models", daemon=True).start()


os.register_at_fork(after_in_child=_load_in_new_worker)


def _read_image_and_fields(request: flask.Request) -> tuple[bytes, dict, bool]:
    """(image bytes, option fields, answer-as-JSON) from any of the three request kinds."""
    fields = request.args.to_dict()
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise invalid_parameter(
                "Missing the file field 'image'. Send the photo as multipart: "
                "curl -F image=@photo.jpg URL"
            )
        if len(request.files) > 1:
            raise invalid_parameter("Send exactly one file, in the field 'image'.")
        fields.update(request.form.to_dict())
        return upload.read(), fields, False
    if mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # [[[[...]]]] nested past Python's limit; `silent` misses it
            body = None
        if not isinstance(body, dict):
            raise ApiError(
                400,
                "invalid_request",
                'The body is not a JSON object. Send {"image": "<base64>", "style": ...}.',
            )
        image = body.pop("image", None)
        fields.update(body)
        return _decode_base64(image), fields, True
    if mimetype in RAW_IMAGE_TYPES or mimetype.startswith("image/"):
        if mimetype not in RAW_IMAGE_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {mimetype} is not supported. Send JPEG, PNG, WebP, GIF, BMP or TIFF.",
            )
        return request.get_data(), fields, False
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {mimetype or '(none)'} is not accepted. Send multipart/form-data "
        "(curl -F image=@photo.jpg), application/json with a base64 'image', or the raw image "
        "with its type (curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg').",
    )


def _decode_base64(value: object) -> bytes:
    if value is None:
        raise invalid_parameter('Missing "image": put the photo, base64-encoded, in "image".')
    if not isinstance(value, str):
        raise invalid_parameter(f'"image" must be a base64 string; got {type(value).__name__}.')
    if value.startswith("data:"):  # a data: URI, as browsers' FileReader produce
        value = value.partition(",")[2]
    text = "".join(value.split())  # `base64` wraps lines at 76 characters
    altchars = b"-_" if ("-" in text or "_" in text) else None  # URL-safe alphabet
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_image(
            '"image" is not valid base64. Encode the file with base64 -w0.'
        ) from None
    if not data:
        raise invalid_image('"image" is empty. Put the base64-encoded photo in "image".')
    return data


def _stylize(
    request: flask.Request, timings: dict[str, float], info: dict
) -> flask.Response | dict:
    t0 = time.perf_counter()
    if request.content_length is not None and request.content_length > CONFIG.max_request_bytes:
        raise RequestEntityTooLarge()  # before reading a byte of it
    data, fields, as_json = _read_image_and_fields(request)
    opts = parse_options(fields, max_image_side=CONFIG.max_image_side)
    registry = instance().registry
    model = registry.get(opts.style, opts.arch)
    info.update(style=model.name, arch=model.arch)
    # A bounded number of requests past this point (MAX_QUEUED_REQUESTS beyond the running
    # ones), so a burst cannot hold unbounded decoded images; the rest get 503 at once.
    with registry.admit():
        decoded = decode_image(data, max_pixels=CONFIG.max_pixels, max_side=opts.max_size)
        h, w = decoded.rgb.shape[:2]
        info.update(input_bytes=len(data), width=w, height=h, source_format=decoded.source_format)
        t1 = time.perf_counter()
        out = registry.stylize(model, decoded.rgb)
        if opts.preserve_color:
            out = transfer_luminance(decoded.rgb, out)
        out = blend(decoded.rgb, out, opts.strength)
        t2 = time.perf_counter()
        body = encode_image(out, decoded.alpha, opts.format, opts.quality)
    t3 = time.perf_counter()
    timings.update(decode=(t1 - t0) * 1e3, infer=(t2 - t1) * 1e3, encode=(t3 - t2) * 1e3)
    if as_json:
        return {
            "image": base64.b64encode(body).decode("ascii"),
            "format": opts.format,
            "width": w,
            "height": h,
            "style": model.name,
            "arch": model.arch,
            "timings_ms": timings,  # the caller adds the total, then rounds
        }
    return flask.Response(body, mimetype=MEDIA_TYPES[opts.format])


def _styles(registry: StyleRegistry) -> dict:
    """Each style once, with its archs; from the metadata read at start, so listing the styles
    builds no session."""
    styles = sorted(registry.styles.values(), key=lambda s: s.name)
    return {
        "default": registry.default,
        "default_arch": registry.default_arch,
        "styles": [s.describe(registry.default_arch) for s in styles],
    }


def _health(registry: StyleRegistry) -> dict:
    return {"status": "ok", "provider": registry.provider, "styles": len(registry.styles)}


def _route(request: flask.Request, timings: dict, info: dict) -> flask.Response | dict:
    path = request.path.rstrip("/") or "/"
    routes = {
        "/styles": {"GET": lambda: _styles(instance().registry)},
        "/healthz": {"GET": lambda: _health(instance().registry)},
    }  # fmt: skip
    for p in STYLIZE_PATHS:
        routes[p] = {"POST": lambda: _stylize(request, timings, info)}
    routes["/"]["GET"] = index  # the web page; POST / stays the API
    if (name := thumbnail_style(path)) is not None:
        routes[path] = {"GET": lambda: instance().thumbnails.response(name)}
    if path not in routes:
        raise ApiError(
            404,
            "not_found",
            f"No endpoint {path[:100]!r}. Use POST / (or /stylize), GET /styles, GET /healthz.",
        )
    handlers = routes[path]
    allowed = {*handlers, "OPTIONS"} | ({"HEAD"} if "GET" in handlers else set())
    if request.method == "OPTIONS":
        return flask.Response(status=204, headers={"Allow": ", ".join(sorted(allowed))})
    if request.method not in allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {path}; use {' or '.join(sorted(handlers))}.",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    return handlers["GET" if request.method == "HEAD" else request.method]()


def _error_response(error: ApiError) -> flask.Response:
    response = flask.jsonify(error.to_json())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _add_cors(request: flask.Request, response: flask.Response) -> None:
    origin = request.headers.get("Origin")
    if not origin or not CONFIG.cors_origins:
        return
    if "*" in CONFIG.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin in CONFIG.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    else:
        return
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    response.headers["Access-Control-Expose-Headers"] = "Server-Timing, X-Request-Id, X-Style-Model"


def _drain_body(request: flask.Request, response: flask.Response) -> None:
    """Read what is left of the body (bounded by MAX_REQUEST_BYTES) now, as functions-framework
    does after every response. Where that read fails (body too large, upload cut off), mark the
    response streamed: the framework then skips its own read, which would turn our JSON
    error into an HTML 500."""
    try:
        request.get_data()
    except (HTTPException, OSError):
        response.response = iter([response.get_data()])


def _as_api_error(e: Exception, request_id: str) -> ApiError:
    """Client mistakes keep their status; anything else is a bug: logged in full, not shown."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, RequestEntityTooLarge):
        return ApiError(
            413,
            "payload_too_large",
            f"The request body is over {CONFIG.max_request_bytes / 2**20:g} MiB "
            "(MAX_REQUEST_BYTES). Send a smaller file, e.g. a JPEG at quality 90.",
        )
    if isinstance(e, HTTPException):  # malformed multipart, an aborted upload, ...
        return ApiError(
            e.code if e.code and 400 <= e.code < 500 else 400,
            "invalid_request",
            f"The request body could not be read ({e.name}). Send a complete request.",
        )
    LOG.error("internal error", exc_info=e, extra={"fields": {"request_id": request_id}})
    return ApiError(
        500,
        "internal",
        f"Internal error; it has been logged as request {request_id}. Retry, and report the "
        "request id if it persists.",
    )


@functions_framework.errorhandler(NotFound)
def _not_routed(_: NotFound) -> flask.Response:
    """functions-framework answers a few paths itself, before `stylize` sees them (/robots.txt,
    /favicon.ico, a path with an encoded newline): the same JSON 404 as ours, not Flask's HTML."""
    response = _error_response(
        ApiError(
            404,
            "not_found",
            "No such endpoint. Use POST / (or /stylize), GET /styles, GET /healthz.",
        )
    )
    response.headers["Server-Timing"] = "total;dur=0.0"
    response.headers["X-Request-Id"] = uuid.uuid4().hex
    return response


@functions_framework.http
def stylize(request: flask.Request) -> flask.Response:
    """Entry point (`--target stylize`)."""
    start = time.perf_counter()
    request.max_content_length = CONFIG.max_request_bytes
    request_id = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0] or uuid.uuid4().hex
    timings: dict[str, float] = {}
    info: dict = {}
    error_code = None
    try:
        result = _route(request, timings, info)
    except Exception as e:
        error = _as_api_error(e, request_id)
        result, error_code = _error_response(error), error.code
    timings["total"] = (time.perf_counter() - start) * 1e3
    rounded = {k: round(v, 2) for k, v in timings.items()}
    if isinstance(result, dict):
        if "timings_ms" in result:
            result["timings_ms"] = rounded
        result = flask.jsonify(result)
    response = result
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={v:.1f}" for k, v in timings.items())
    response.headers["X-Request-Id"] = request_id
    if "arch" in info and response.status_code < 400:
        response.headers["X-Style-Model"] = f"{info['style']}/{info['arch']}"
    _add_cors(request, response)
    _drain_body(request, response)
    LOG.log(
        logging.ERROR if response.status_code >= 500 else logging.INFO,
        f"{request.method} {request.path[:200]} {response.status_code}",
        extra={
            "fields": {
                "status": response.status_code,
                "error": error_code,
                "request_id": request_id,
                "timings_ms": rounded,
                **info,
            }
        },
    )
    return response
