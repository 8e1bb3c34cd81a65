"""The one place where exceptions become the API's errors: what the layers below raise
(imaging, styles, ops), what werkzeug and gunicorn refuse, and anything else (a bug: 500).
The JSON codes and messages clients see are set here or in errors.py, nowhere else."""

from __future__ import annotations

from gunicorn.http import errors as http_errors  # type: ignore[import-untyped]
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from stylefn.http.errors import (
    BAD_HTTP,
    RETRY_AFTER_S,
    ApiError,
    headers_too_large,
    internal,
    invalid_request,
    not_found,
    overloaded,
    payload_too_large,
    uri_too_long,
)
from stylefn.http.framing import LIMIT_REQUEST_LINE, MAX_HEADER_BYTES, Verdict
from stylefn.imaging.errors import (
    ImageTooComplex,
    ImageTooLarge,
    ImagingError,
    InvalidImage,
    UnsupportedOutput,
)
from stylefn.ops.admission import Overloaded
from stylefn.ops.deadlines import DeadlineExceeded
from stylefn.styles.catalog import ArchUnavailable, UnknownStyle
from stylefn.styles.mix import Unmixable
from stylefn.video.errors import InvalidVideo, UnsupportedVideo, VideoTooLarge

NOT_FOUND_HINT = "Use POST / (or /stylize), GET /styles, GET /healthz."

# Imaging's refusals: the client's image or video, or the output it asked for.
_IMAGING = {
    InvalidImage: (400, "invalid_image"),
    ImageTooLarge: (413, "image_too_large"),
    ImageTooComplex: (422, "image_too_complex"),
    UnsupportedOutput: (400, "invalid_parameter"),
    InvalidVideo: (400, "invalid_video"),
    VideoTooLarge: (413, "video_too_large"),
    UnsupportedVideo: (415, "unsupported_video"),
}

# gunicorn's parse errors, in words for the message (never the client's bytes).
_PARSE_ERRORS: list[tuple[type[Exception], str]] = [
    (http_errors.InvalidRequestLine, "a malformed request line"),
    (http_errors.InvalidRequestMethod, "an unsupported method"),
    (http_errors.InvalidHTTPVersion, "an unsupported HTTP version"),
    (http_errors.InvalidHeaderName, "a header name with invalid characters"),
    (http_errors.ObsoleteFolding, "a folded header line"),
    (http_errors.InvalidHeader, "a malformed, repeated or contradictory header"),
    (http_errors.UnsupportedTransferCoding, "an unsupported Transfer-Encoding"),
    (http_errors.InvalidChunkSize, "a malformed chunk size in the chunked body"),
    (http_errors.ChunkMissingTerminator, "a chunk without its CRLF in the chunked body"),
    (http_errors.InvalidChunkExtension, "a malformed chunk extension in the chunked body"),
    (http_errors.ParseException, "a request gunicorn could not parse"),
]


def api_error(e: Exception, *, request_id: str, max_request_bytes: int) -> ApiError:
    """What the function answers for an exception raised while serving a request. Client
    mistakes and refusals keep their meaning; anything else is a bug (500 internal), whose
    message holds only the request id: the caller logs the stack trace under it."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, ImagingError):
        status, code = next(v for kind, v in _IMAGING.items() if isinstance(e, kind))
        return ApiError(status, code, e.message)
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
    if isinstance(e, Unmixable):
        named = ", ".join(f"{style} ({network})" for style, network in e.networks.items())
        return ApiError(
            400,
            "invalid_parameter",
            f"The styles {named} belong to different networks and cannot be mixed. Mix only "
            "styles of one network: GET /styles lists each style's mixable_with.",
        )
    if isinstance(e, Overloaded):
        return overloaded(str(e))
    if isinstance(e, DeadlineExceeded):
        return ApiError(503, "deadline_exceeded", str(e), headers={"Retry-After": RETRY_AFTER_S})
    if isinstance(e, (http_errors.ParseException, http_errors.NoMoreData)):
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
    return internal(request_id)


def not_routed(e: HTTPException) -> ApiError:
    """What Flask refused itself, before the function saw the request: functions-framework's
    own paths (/robots.txt, /favicon.ico, a path with an encoded newline) and a WebSocket
    upgrade (werkzeug's router answers 400)."""
    if isinstance(e, NotFound):
        return not_found(f"No such endpoint. {NOT_FOUND_HINT}")
    return ApiError(
        e.code if e.code and 400 <= e.code < 500 else 400,
        "invalid_request",
        f"The request could not be served ({e.name}); WebSocket and other upgrades are not "
        f"supported. Send a plain HTTP request. {NOT_FOUND_HINT}",
    )


def framing_error(verdict: Verdict, max_request_bytes: int) -> ApiError:
    """What the worker's event loop refuses from a request's bytes alone (framing.py)."""
    if verdict is Verdict.LINE_TOO_LONG:
        return uri_too_long(LIMIT_REQUEST_LINE)
    if verdict is Verdict.HEADERS_TOO_LARGE:
        return headers_too_large(MAX_HEADER_BYTES)
    if verdict is Verdict.BODY_TOO_LARGE:
        return payload_too_large(max_request_bytes)
    if verdict is Verdict.BAD_CHUNK:
        return invalid_request(BAD_HTTP.format(detail="a malformed chunk in the chunked body"))
    raise ValueError(f"{verdict} is no refusal")


def parse_error(exc: BaseException) -> ApiError | None:
    """What gunicorn's parser refused, before the function saw the request; None when it is
    not the client's doing (the caller answers 500 internal)."""
    if isinstance(exc, http_errors.LimitRequestLine):
        return uri_too_long(LIMIT_REQUEST_LINE)
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return headers_too_large(MAX_HEADER_BYTES)
    if isinstance(exc, http_errors.ExpectationFailed):
        return ApiError(
            417,
            "expectation_failed",
            "Only 'Expect: 100-continue' is supported. Leave the Expect header out.",
        )
    if isinstance(exc, (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName)):
        return None  # the application's header: a bug, not the client's
    for kind, detail in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return invalid_request(BAD_HTTP.format(detail=detail))
    return None
