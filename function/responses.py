"""What every response gets on its way out: JSON errors, CORS headers, and the rest of the
request body read so the framework cannot turn our answer into an HTML 500."""

from __future__ import annotations

import flask
from errors import ApiError
from gunicorn.http.errors import ParseException  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException

EXPOSED_HEADERS = "Server-Timing, X-Request-Id, X-Style-Model"


def error_response(error: ApiError) -> flask.Response:
    response = flask.jsonify(error.to_json())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def add_cors(request: flask.Request, response: flask.Response, origins: tuple[str, ...]) -> None:
    """CORS headers when the request's Origin is allowed by CORS_ORIGINS; none otherwise."""
    origin = request.headers.get("Origin")
    if not origin or not origins:
        return
    if "*" in origins:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin in origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    else:
        return
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


def drain_body(request: flask.Request, response: flask.Response) -> None:
    """Read what is left of the body (bounded by MAX_REQUEST_BYTES) now, as functions-framework
    does after every response. Where that read fails (body too large, upload cut off, a broken
    chunk on a route that never read its body), mark the response streamed: the framework then
    skips its own read, which would turn our JSON error into an HTML 500."""
    try:
        request.get_data()
    except (HTTPException, OSError, ParseException):  # gunicorn's NoMoreData is an OSError
        response.response = iter([response.get_data()])


def server_timing(timings_ms: dict[str, float]) -> str:
    return ", ".join(f"{k};dur={v:.1f}" for k, v in timings_ms.items())
