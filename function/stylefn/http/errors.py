"""The API's error: a status, a stable code and a message that says how to fix the request.

The HTTP layer's own modules (request parsing, options, routing, the worker) raise ApiError
directly: they are about what the client sent. The layers below (imaging, styles, ops) raise
their own exceptions and know nothing of HTTP; error_map.py is the one place that turns those
into ApiErrors.
"""

from __future__ import annotations

from typing import Any

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


# What the HTTP layer refuses (worker.py), before or while the request is read.
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


def internal(request_id: str) -> ApiError:
    """A bug, not the client's: the message holds only the id the stack trace is logged under."""
    return ApiError(
        500,
        "internal",
        f"Internal error; it has been logged as request {request_id}. Retry, and report the "
        "request id if it persists.",
    )
