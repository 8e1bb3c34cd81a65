"""The gunicorn worker the function is served with (function/gunicorn.conf.py): gunicorn's threaded
worker, except that each request is read whole by the worker's event loop before a thread takes
it, and that what the HTTP layer refuses is answered with the API's JSON errors.

Why: gunicorn's gthread worker gives a connection a thread as soon as its first byte arrives,
and the thread then blocks on the socket until the headers and the body are in, with no read
timeout. Measured: 16 connections sending at one byte a second (twice the 8 threads) left every
other client without an answer for 25 s and more. Here the event loop reads every connection
without blocking (framing.py says when a request is complete), drops one whose headers or
body do not arrive in time (HEADER_TIMEOUT_S, BODY_TIMEOUT_S: 408), bounds the request bytes it
holds (MAX_BUFFERED_BYTES: 503), and only then hands the request to a thread, whose reads are
served from memory. A slow client costs a socket and its buffered bytes, never a thread.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]

from stylefn.http.error_map import framing_error, parse_error
from stylefn.http.errors import ApiError, internal, overloaded, request_timeout
from stylefn.http.framing import LIMIT_REQUEST_LINE, MAX_HEADER_BYTES, RequestFraming, Verdict
from stylefn.http.refusals import log_refusal, request_line_parts, response_bytes
from stylefn.ops import memory
from stylefn.ops.config import Config

LOG = logging.getLogger("stylize")  # the request log (ops/logs.py)

IO_TIMEOUT_S = 30.0  # a thread's socket reads and writes, once the request is in memory
RECV_BYTES = 256 * 1024
TRIM_AFTER_BYTES = 1 << 20


@dataclass
class _Reading:
    """A connection whose next request the event loop is reading."""

    conn: TConn
    framing: RequestFraming
    deadline: float  # time.monotonic(): the headers', then the body's
    held: int = 0  # bytes of it counted against MAX_BUFFERED_BYTES
    registered: bool = False


class HardenedThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with whole-request reads in the event loop (module docstring).

    Everything here runs on the worker's main thread (the event loop) except `handle`,
    `handle_request` and `handle_error`, which run on a pool thread with the request already
    in memory. gunicorn 27's ThreadWorker routes every connection through `enqueue_req` (new,
    kept-alive, pipelined), which is where reading begins."""

    def init_process(self) -> None:
        self.limits = Config.from_env()
        self._reading: dict[TConn, _Reading] = {}
        self._held = 0  # request bytes in memory, all connections
        self._thread = threading.local()  # the request line a pool thread serves, for its log
        super().init_process()

    # --- the event loop: reading requests ------------------------------------------------

    def enqueue_req(self, conn: TConn) -> None:
        if getattr(conn, "styleserve_ready", False):  # read whole: a thread may take it
            conn.styleserve_ready = False
            super().enqueue_req(conn)
            return
        framing = RequestFraming(
            max_line=LIMIT_REQUEST_LINE,
            max_header_bytes=MAX_HEADER_BYTES,
            max_body_bytes=self.limits.max_request_bytes,
        )
        reading = _Reading(conn, framing, time.monotonic() + self.limits.header_timeout_s)
        self._reading[conn] = reading
        conn.sock.setblocking(False)
        # What the last request's parser read ahead (a pipelined request) comes first.
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if leftover and self._feed(reading, leftover):
            return
        try:
            self.poller.register(
                conn.sock, selectors.EVENT_READ, partial(self._on_readable, reading)
            )
        except (OSError, ValueError):  # the socket is already gone
            self._close(reading)
            return
        reading.registered = True

    def _on_readable(self, reading: _Reading, _sock: object) -> None:
        try:
            data = reading.conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(reading)
            return
        if data:
            self._feed(reading, data)
        elif reading.framing.headers_done:
            # The client stopped sending (perhaps only its half: it may still read): the
            # function answers what came, e.g. 400 for a truncated image.
            self._dispatch(reading)
        else:
            self._close(reading)

    def _feed(self, reading: _Reading, data: bytes) -> bool:
        """Take `data`; True once the connection has left the event loop's reading."""
        if self._held + len(data) > self.limits.max_buffered_bytes:
            self._refuse(
                reading,
                overloaded(
                    "The server is holding as many uploads in memory as it may "
                    "(MAX_BUFFERED_BYTES). Retry after a few seconds."
                ),
            )
            return True
        self._held += len(data)
        reading.held += len(data)
        framing = reading.framing
        had_headers = framing.headers_done
        verdict = framing.feed(data)
        if framing.headers_done and not had_headers:
            reading.deadline = time.monotonic() + self.limits.body_timeout_s
            if framing.expects_continue and verdict is Verdict.INCOMPLETE:
                # The client waits for this before its body; gunicorn would send it only once a
                # thread has the request, which here needs the body first.
                with contextlib.suppress(OSError):
                    reading.conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if verdict is Verdict.INCOMPLETE:
            return False
        if verdict is Verdict.READY:
            self._dispatch(reading)
        else:
            self._refuse(reading, framing_error(verdict, self.limits.max_request_bytes))
        return True

    def _stop_reading(self, reading: _Reading) -> None:
        self._reading.pop(reading.conn, None)
        if reading.registered:
            reading.registered = False
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(reading.conn.sock)

    def _dispatch(self, reading: _Reading) -> None:
        """The request is in memory: to a thread (gunicorn's parser reads it from there)."""
        self._stop_reading(reading)
        conn = reading.conn
        conn.styleserve_request = bytes(reading.framing.data)
        conn.styleserve_held = reading.held  # given back when the request is finished
        conn.styleserve_body_too_large = reading.framing.body_too_large
        conn.styleserve_ready = True
        self.enqueue_req(conn)

    def _refuse(self, reading: _Reading, error: ApiError) -> None:
        """Answer `error` from the event loop (one small non-blocking send) and close."""
        request_id = uuid.uuid4().hex
        with contextlib.suppress(OSError):
            reading.conn.sock.send(response_bytes(error, request_id))
        line = bytes(reading.framing.data[:300]).split(b"\r\n", 1)[0]
        log_refusal(error, request_id, reading.conn.client, *request_line_parts(line))
        self._close(reading)

    def _close(self, reading: _Reading) -> None:
        self._stop_reading(reading)
        self._held -= reading.held
        reading.held = 0
        self.nr_conns -= 1
        reading.conn.close()

    def murder_pending(self) -> None:
        """Called by the event loop about once a second: also drop the connections whose
        request did not arrive in time (408 if they sent anything), or all of them when the
        worker is stopping."""
        super().murder_pending()
        now = time.monotonic()
        for reading in list(self._reading.values()):
            if not self.alive:
                self._close(reading)
            elif reading.deadline <= now:
                if reading.framing.data:
                    limits = self.limits
                    self._refuse(
                        reading, request_timeout(limits.header_timeout_s, limits.body_timeout_s)
                    )
                else:  # connected and silent: nothing to answer
                    self._close(reading)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        held = getattr(conn, "styleserve_held", 0)
        self._held -= held
        conn.styleserve_held = 0
        super().finish_request(conn, fs)
        if self._held == 0 and held >= TRIM_AFTER_BYTES:
            memory.trim()  # idle after a large upload: its copies' memory back to the OS

    # --- a pool thread: the request, already in memory -----------------------------------

    def handle(self, conn: TConn) -> Any:
        request = conn.__dict__.pop("styleserve_request", None)
        self._thread.request_line = b""
        if request is not None:
            self._thread.request_line = request[:300].split(b"\r\n", 1)[0]
            conn.data_ready = True  # skip gunicorn's wait for a first byte: it is all here
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(request)
        return super().handle(conn)

    def handle_request(self, req: Any, conn: TConn) -> bool:
        # The event loop sent "100 Continue" where one was due, and never before a body over
        # the limit, which the function refuses unread.
        req._expected_100_continue = False
        if getattr(conn, "styleserve_body_too_large", False):
            req.force_close()  # the unread body must not be taken for the next request
        # Bounds what the event loop did not read (the rest of a body over the limit) and the
        # response's writes to a client that stops reading.
        conn.sock.settimeout(IO_TIMEOUT_S)
        return bool(super().handle_request(req, conn))

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """What gunicorn's parser refused, as the API's JSON (gunicorn's own page is HTML)."""
        request_id = uuid.uuid4().hex
        error = parse_error(exc)
        if error is None:  # a bug, not the client's: logged with its trace, like the function's
            LOG.error("internal error", exc_info=exc, extra={"fields": {"request_id": request_id}})
            error = internal(request_id)
        with contextlib.suppress(OSError):
            client.sendall(response_bytes(error, request_id))
        log_refusal(error, request_id, addr, *request_line_parts(self._thread.request_line))
