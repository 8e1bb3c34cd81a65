"""The API's error type, and the one place where every other exception becomes one.

Request parsing, options and image decoding raise ApiError directly: they are about what the
client sent. The layers below (catalog, admission, inference) raise their own exceptions and
know nothing of HTTP; `as_api_error` gives each its status, code and headers.
"""

from __future__ import annotations

from typing import Any

from admission import Overloaded
from catalog import ArchUnavailable, UnknownStyle
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

RETRY_AFTER_S = "5"  # sent with 503 overloaded


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


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


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
        return ApiError(503, "overloaded", str(e), headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(e, RequestEntityTooLarge):
        return ApiError(
            413,
            "payload_too_large",
            f"The request body is over {max_request_bytes / 2**20:g} MiB "
            "(MAX_REQUEST_BYTES). Send a smaller file, e.g. a JPEG at quality 90.",
        )
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
