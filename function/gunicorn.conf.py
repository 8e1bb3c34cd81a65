"""How the function is served, the one way everywhere (the containers, the README's serve command,
devtools/server.py for tests and benchmarks):

    gunicorn --config function/gunicorn.conf.py       # HOST (0.0.0.0) and PORT (8080) from the env

gunicorn, as `functions-framework` runs it, but with settings we own: that command sets no read
timeout anywhere and no bound on the request line (`limit_request_line=0`: a 32 MiB URL took
70 s to parse), and its gthread worker gives every slow client a thread. Here the worker is
stylefn.http.worker.HardenedThreadWorker: requests are read whole without a thread, with timeouts
(HEADER_TIMEOUT_S, BODY_TIMEOUT_S), and what the HTTP layer refuses is answered with the API's
JSON errors. Any setting can still be overridden on the command line (`--threads 8`).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# function/ on the path, as functions-framework puts it: wsgi.py, and the stylefn package where
# it is not installed (the containers copy function/ to /app and install only its requirements).
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

from gunicorn import glogging  # type: ignore[import-untyped]  # noqa: E402

from stylefn.http.framing import LIMIT_REQUEST_LINE  # noqa: E402
from stylefn.http.worker import HardenedThreadWorker  # noqa: E402
from stylefn.ops import logs  # noqa: E402

wsgi_app = "wsgi:app"  # functions-framework's app for FUNCTION_TARGET in FUNCTION_SOURCE
bind = [f"{os.environ.get('HOST') or '0.0.0.0'}:{os.environ.get('PORT') or '8080'}"]
workers = int(os.environ.get("WORKERS") or 1)  # one process: one set of sessions per GPU
worker_class = HardenedThreadWorker
# Threads serve requests already read whole, so they are only as many as may usefully wait:
# more than the admitted ones (MAX_CONCURRENT_RUNS + MAX_QUEUED_REQUESTS, 17-18 by default),
# so that bound answers 503 at once instead of requests queueing for a thread, with room for
# cheap GETs beside them. functions-framework's 4 per CPU (8 here) could never reach it.
threads = int(os.environ.get("THREADS") or 32)
worker_connections = 1000  # open connections, slow ones included; each costs a socket only
# main.py is imported before the fork, as functions-framework does: its setup checks fail the
# start loudly, and the worker builds its sessions right after the fork (never before it).
preload_app = True
keepalive = 5
graceful_timeout = 10  # Cloud Run sends SIGKILL 10 s after SIGTERM
limit_request_line = LIMIT_REQUEST_LINE
limit_request_fields = 100
limit_request_field_size = 8190
loglevel = os.environ.get("GUNICORN_LOG_LEVEL") or "warning"


class JsonLogger(glogging.Logger):
    """gunicorn's own messages (worker start and exit, errors) as JSON lines on stdout, like
    every other line the function writes (stylefn/ops/logs.py)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        handler = logs.json_handler()
        handler._gunicorn = True  # type: ignore[attr-defined]  # gunicorn's mark for its own
        self.error_log.handlers[:] = [handler]


logger_class = JsonLogger


def when_ready(server: Any) -> None:
    """One line with the URL served, once the sockets listen (the models load in the worker)."""
    log = _server_log()
    for listener in server.LISTENERS:
        url = str(listener)
        # 0.0.0.0 listens everywhere but is no address to open: name the local one too.
        local = url.replace("//0.0.0.0:", "//127.0.0.1:")
        shown = url if local == url else f"{url} (on this machine: {local})"
        log.info(f"serving on {shown}", extra={"fields": {"threads": server.cfg.threads}})


def _server_log() -> logging.Logger:
    logs.configure()  # a stand-in function (tests) may not have configured the loggers
    return logging.getLogger("server")
