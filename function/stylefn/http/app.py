"""A request's way through the function: its id, its route and deadline, the one mapping of any
exception to the API's error, the response with its headers, and its log line. main.py builds
one StyleFunction per app and hands it every request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import flask
from werkzeug.exceptions import HTTPException

from stylefn.http.context import Context
from stylefn.http.error_map import api_error, not_routed
from stylefn.http.errors import ApiError
from stylefn.http.responses import add_headers, drain_body, error_response
from stylefn.http.routes import Answer, route
from stylefn.http.stylized import Stylized
from stylefn.instance import Instance
from stylefn.ops import deadlines
from stylefn.ops.config import Config

TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


class StyleFunction:
    """The HTTP function: `__call__` serves a request routed to it; `not_routed` answers what
    Flask refused before routing, with the same JSON errors and headers."""

    def __init__(self, config: Config, instance: Callable[[], Instance], log: logging.Logger):
        self.context = Context(config, instance)
        self.config = config
        self.log = log

    def __call__(self, request: flask.Request) -> flask.Response:
        start = time.perf_counter()
        config = self.config
        request.max_content_length = config.max_request_bytes
        request_id = request_id_for(request)
        error: ApiError | None = None
        try:
            target = route(request)
            if target.handler is None:  # OPTIONS
                answer: Answer = flask.Response(status=204, headers={"Allow": target.allow})
            else:
                with deadlines.limit(
                    config.request_deadline_s, decode_seconds=config.decode_deadline_s
                ):
                    answer = target.handler(self.context, request, **target.args)
        except Exception as e:
            error = api_error(e, request_id=request_id, max_request_bytes=config.max_request_bytes)
            if error.code == "internal":
                self.log.error(
                    "internal error", exc_info=e, extra={"fields": {"request_id": request_id}}
                )
            answer = error_response(error)
        stylized = answer if isinstance(answer, Stylized) else None
        # Server-Timing lists them in this order; the log and a JSON answer carry them rounded.
        timings = {**(stylized.timings_ms if stylized else {}), "total": _ms_since(start)}
        rounded = {k: round(v, 2) for k, v in timings.items()}
        if isinstance(answer, Stylized):
            response = answer.response(rounded)
        elif isinstance(answer, dict):
            response = flask.jsonify(answer)
        else:
            response = answer
        add_headers(
            request,
            response,
            request_id=request_id,
            timings_ms=timings,
            cors_origins=config.cors_origins,
        )
        drain_body(request, response)
        self._log(request, response, error, request_id, rounded, stylized)
        return response

    def not_routed(self, e: HTTPException) -> flask.Response:
        """Flask's own refusals (functions-framework's paths, a WebSocket upgrade) as the API's
        JSON, not Flask's HTML."""
        response = error_response(not_routed(e))
        add_headers(
            flask.request,
            response,
            request_id=request_id_for(flask.request),
            timings_ms={"total": 0.0},
            cors_origins=self.config.cors_origins,
        )
        return response

    def _log(
        self,
        request: flask.Request,
        response: flask.Response,
        error: ApiError | None,
        request_id: str,
        timings_ms: dict[str, float],
        stylized: Stylized | None,
    ) -> None:
        status = response.status_code
        if error and error.code == "internal":
            level = logging.ERROR
        else:
            level = logging.WARNING if status >= 500 else logging.INFO  # 503: shed load
        fields = {
            "status": status,
            "error": error.code if error else None,
            "request_id": request_id,
            "timings_ms": timings_ms,
            **(stylized.log_fields() if stylized else {}),
        }
        self.log.log(
            level, f"{request.method} {request.path[:200]} {status}", extra={"fields": fields}
        )


def request_id_for(request: flask.Request) -> str:
    """Cloud Run's trace id (`X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`, 32 hex digits)
    when the header carries one, so the log joins the trace; anything else a client sent is not
    echoed back: a fresh id."""
    trace = request.headers.get("X-Cloud-Trace-Context", "").split("/")[0]
    return trace.lower() if TRACE_ID.fullmatch(trace) else uuid.uuid4().hex


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3
