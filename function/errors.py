"""The API's error type, and the one place where every other exception becomes one.

Request parsing, options and image decoding raise ApiError directly: they are about what the
client sent. The layers below (catalog, admission, inference) raise their own exceptions and
know nothing of HTTP; `as_api_error` gives each its status, code and headers.
"""

from __future__ import annotations

from typing import Any

from admission import Overloaded
from catalog import ArchUnavailable, UnknownStyle
from deadlines import DeadlineExceeded
from gunicorn.http.errors import NoMoreData, ParseException  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

RETRY_AFTER_S = "5"  # sent with 503 overloaded and deadline_exceeded


class ApiError(Exception):
    """An error the client can fix; `code` is stable, `message` says how to fix it."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def invalid_image(message: str) -> ApiError:
    return ApiError(400, "invalid_image", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def image_too_large(message: str) -> ApiError:
    return ApiError(413, "image_too_large", message)


def image_too_complex(message: str) -> ApiError:
    return ApiError(422, "image_too_complex", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def overloaded(message: str) -> ApiError:
    return ApiError(503, "overloaded", message, headers={"Retry-After": RETRY_AFTER_S})


def payload_too_large(max_request_bytes: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is over {max_request_bytes / 2**20:g} MiB "
        "(MAX_REQUEST_BYTES). Send a smaller file, e.g. a JPEG at quality 90.",
    )


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


# What the HTTP layer refuses (http_worker.py), before or while the request is read.
BAD_HTTP = (
    "The request is not valid HTTP/1.1 ({detail}). Send one Content-Length or "
    "Transfer-Encoding: chunked (not both), CRLF line ends and well-formed headers."
)


def request_timeout(header_timeout_s: float, body_timeout_s: float) -> ApiError:
    return ApiError(
        408,
        "request_timeout",
        f"The request did not arrive in time: its headers must arrive within "
        f"{header_timeout_s:g} s (HEADER_TIMEOUT_S) and its body within {body_timeout_s:g} s "
        "(BODY_TIMEOUT_S). Send the whole request at once, or a smaller image.",
    )


def uri_too_long(max_line: int) -> ApiError:
    return ApiError(
        414,
        "uri_too_long",
        f"The request line is over {max_line:,} bytes. Send the options as form fields or JSON "
        "keys in the body, not in a long URL.",
    )


def headers_too_large(max_header_bytes: int) -> ApiError:
    return ApiError(
        431,
        "headers_too_large",
        f"The request headers are over the limit ({max_header_bytes:,} bytes in all, 8,190 a "
        "header, 100 headers). Send fewer or smaller headers (cookies, tokens).",
    )


def as_api_error(e: Exception, *, request_id: str, max_request_bytes: int) -> ApiError:
    """Client mistakes and refusals keep their meaning; anything else is a bug (500 internal),
    whose message holds only the request id: the caller logs the stack trace under it."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, UnknownStyle):
        shown = e.name if len(e.name) <= 64 else e.name[:64] + "..."
        return ApiError(
            404,
            "unknown_style",
            f"No style named {shown!r}. Available styles: {', '.join(e.available)} "
            "(GET /styles lists them).",
        )
    if isinstance(e, ArchUnavailable):
        return ApiError(
            404,
            "arch_unavailable",
            f"Style {e.style!r} has no {e.arch!r} model; it has {', '.join(e.available)}. Ask "
            f"for one of those, or leave out arch to get {e.default} (GET /styles lists each "
            "style's archs).",
        )
    if isinstance(e, Overloaded):
        return overloaded(str(e))
    if isinstance(e, DeadlineExceeded):
        return ApiError(503, "deadline_exceeded", str(e), headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(e, (ParseException, NoMoreData)):
        # gunicorn parses a chunked body as the function reads it: a broken chunk or trailer,
        # or the body ending early, surfaces here
        return invalid_request(BAD_HTTP.format(detail=f"{type(e).__name__} in the body"))
    if isinstance(e, TimeoutError):  # the socket's read timeout, inside a body read
        return ApiError(
            408,
            "request_timeout",
            "The request body stopped arriving. Send the whole request at once.",
        )
    if isinstance(e, RequestEntityTooLarge):
        return payload_too_large(max_request_bytes)
    if isinstance(e, HTTPException):  # malformed multipart, an aborted upload, ...
        return ApiError(
            e.code if e.code and 400 <= e.code < 500 else 400,
            "invalid_request",
            f"The request body could not be read ({e.name}). Send a complete request.",
        )
    return ApiError(
        500,
        "internal",
        f"Internal error; it has been logged as request {request_id}. Retry, and report the "
        "request id if it persists.",
    )
