"""Logging as Cloud Run wants it: one JSON object per line on stdout."""

from __future__ import annotations

import json
import logging
import sys
import traceback

# "inference" logs session builds and the CUDA fallback (styles/registry.py); "stylize" is the
# request log (the HTTP layer's refusals too, http/worker.py); "server" is the server's start
# (gunicorn.conf.py).
LOGGER_NAMES = ("stylize", "inference", "server")


class JsonFormatter(logging.Formatter):
    """Cloud Logging reads `severity` and `message`; a record's `fields` extra adds the rest."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage()}
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["message"] += "\n" + "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str)


class StdoutHandler(logging.Handler):
    """Writes each record to the current sys.stdout (not the one at start, so tests capturing
    stdout see it), which Cloud Run collects as the log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def json_handler() -> logging.Handler:
    """A handler writing JSON lines to stdout (also given to gunicorn's own error log)."""
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    return handler


def configure() -> logging.Logger:
    """JSON lines for the function's loggers; returns the request logger."""
    handler = json_handler()
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logging.getLogger("stylize")
