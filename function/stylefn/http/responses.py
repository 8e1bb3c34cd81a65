"""What every response gets on its way out, the one place its headers are added: the request id,
nosniff, Server-Timing and CORS (`add_headers`, and `standard_headers` for the worker's raw
refusals); JSON errors; and the rest of the request body read so the framework cannot turn our
answer into an HTML 500."""

from __future__ import annotations

from collections.abc import Mapping

import flask
from gunicorn.http.errors import ParseException  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException

from stylefn.http.errors import ApiError

EXPOSED_HEADERS = "Server-Timing, X-Request-Id, X-Style-Model"


def error_response(error: ApiError) -> flask.Response:
    response = flask.jsonify(error.to_json())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def standard_headers(request_id: str, timings_ms: Mapping[str, float]) -> dict[str, str]:
    """The headers every response carries, whoever answers: the function, Flask's own refusals
    or the worker's event loop."""
    return {
        "X-Request-Id": request_id,
        "X-Content-Type-Options": "nosniff",  # a JSON error is never run as HTML
        "Server-Timing": server_timing(timings_ms),
    }


def add_headers(
    request: flask.Request,
    response: flask.Response,
    *,
    request_id: str,
    timings_ms: Mapping[str, float],
    cors_origins: tuple[str, ...],
) -> None:
    """`standard_headers`, and CORS's when the request's Origin is allowed."""
    response.headers.update(standard_headers(request_id, timings_ms))
    response.headers.update(cors_headers(request.headers.get("Origin"), cors_origins))


def cors_headers(origin: str | None, origins: tuple[str, ...]) -> dict[str, str]:
    """CORS headers when `origin` is allowed by CORS_ORIGINS (`origins`); none otherwise."""
    if not origin or not origins:
        return {}
    if "*" in origins:
        allowed = {"Access-Control-Allow-Origin": "*"}
    elif origin in origins:
        allowed = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    else:
        return {}
    return {
        **allowed,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Authorization",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    }


def drain_body(request: flask.Request, response: flask.Response) -> None:
    """Read what is left of the body (bounded by MAX_REQUEST_BYTES) now, as functions-framework
    does after every response. Where that read fails (body too large, upload cut off, a broken
    chunk on a route that never read its body), mark the response streamed: the framework then
    skips its own read, which would turn our JSON error into an HTML 500."""
    try:
        request.get_data()
    except (HTTPException, OSError, ParseException):  # gunicorn's NoMoreData is an OSError
        response.response = iter([response.get_data()])


def server_timing(timings_ms: Mapping[str, float]) -> str:
    return ", ".join(f"{k};dur={v:.1f}" for k, v in timings_ms.items())
