"""How the HTTP layer answers a request it refuses before the function sees it (worker.py): the
whole response written straight to the socket, and the request log's line for it."""

from __future__ import annotations

import http
import json
import logging
from typing import Any

from stylefn.http.errors import ApiError
from stylefn.http.responses import standard_headers

LOG = logging.getLogger("stylize")  # the request log (ops/logs.py)


def response_bytes(error: ApiError, request_id: str) -> bytes:
    """A complete HTTP/1.1 response carrying `error` as the API's JSON; the connection closes."""
    body = json.dumps(error.to_json()).encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **standard_headers(request_id, {"total": 0.0}),
        **error.headers,
    }
    head = f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


def log_refusal(error: ApiError, request_id: str, client: Any, method: str, path: str) -> None:
    """The request log's line for a request the HTTP layer answered (the function never saw it)."""
    LOG.log(
        logging.WARNING if error.status >= 500 else logging.INFO,
        f"{method[:20] or '-'} {path[:200] or '-'} {error.status}",
        extra={
            "fields": {
                "status": error.status,
                "error": error.code,
                "request_id": request_id,
                "client": client[0] if isinstance(client, tuple) else str(client),
                "layer": "http",
            }
        },
    )


def request_line_parts(request_line: bytes) -> tuple[str, str]:
    """(method, path) of a raw request line, for the log; whatever the client sent."""
    method, _, rest = request_line.decode("latin-1").partition(" ")
    return method, rest.rpartition(" ")[0] or rest
