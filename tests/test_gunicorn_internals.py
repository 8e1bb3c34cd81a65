"""Every gunicorn internal that stylefn/http/worker.py relies on, checked on gunicorn's own
objects, so an upgrade that changes one fails here, by name, rather than as a hung or
mis-framed request in production. gunicorn is pinned (pyproject.toml's serve extras,
function/requirements*.txt); when the pin moves, these tests say what to look at.

What the worker relies on, and the test that checks it:
- ThreadWorker routes every connection through `enqueue_req` (accepted, kept alive, deferred,
  read ahead), which is where the worker's reading begins (test_every_connection_...);
- `nr_conns` counts open connections, one up on accept and one down on close
  (test_every_connection_..., test_finish_request_...);
- `conn.data_ready` makes `handle` skip its wait for a first byte (test_handle_...);
- `conn.init()` builds the parser, and its unreader's `unread` / `take_buffered` hold the
  request the event loop read and what the parser read ahead (test_unreader_...);
- `req._expected_100_continue` is what makes gunicorn send "100 Continue"
  (test_expect_continue_...), and `req.force_close()` ends keep-alive (test_force_close);
- `handle` passes what the parser refuses to `handle_error(req, client, addr, exc)`
  (test_handle_reports_parse_errors_...);
- `murder_pending` runs on every turn of the event loop (test_murder_pending_...);
- the gunicorn.http.errors classes error_map.py names exist (test_parse_error_classes).
"""

from __future__ import annotations

import inspect
import selectors
import socket
from collections.abc import Iterator
from concurrent.futures import Future
from importlib import metadata
from pathlib import Path

import pytest
from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.http import errors as http_errors
from gunicorn.http import wsgi
from gunicorn.workers.gthread import TConn, ThreadWorker

from stylefn.http import error_map, worker

ROOT = Path(__file__).resolve().parents[1]
REQUEST = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
PIPELINED = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"


def test_installed_gunicorn_is_the_pinned_one():
    pins = [
        line
        for name in ("requirements.txt", "requirements-cpu.txt")
        for line in (ROOT / "function" / name).read_text().splitlines()
        if line.startswith("gunicorn==")
    ]
    assert pins == [f"gunicorn=={metadata.version('gunicorn')}"] * 2, (
        "gunicorn's version differs from function/requirements*.txt: run this file against the "
        "version you pin"
    )


def test_worker_overrides_what_it_means_to():
    for name in ("init_process", "enqueue_req", "murder_pending", "finish_request", "handle"):
        assert callable(getattr(ThreadWorker, name, None)), f"ThreadWorker.{name} is gone"
    assert issubclass(worker.HardenedThreadWorker, ThreadWorker)
    params = {
        "enqueue_req": ["self", "conn"],
        "finish_request": ["self", "conn", "fs"],
        "handle": ["self", "conn"],
        "handle_request": ["self", "req", "conn"],
        "handle_error": ["self", "req", "client", "addr", "exc"],
    }
    for name, expected in params.items():
        assert list(inspect.signature(getattr(ThreadWorker, name)).parameters) == expected, name


class Recorder(ThreadWorker):
    """gunicorn's ThreadWorker, built for real, recording what it hands to a thread."""

    def __init__(self) -> None:
        cfg = Config()
        super().__init__(0, 0, [], None, 30, cfg, glogging.Logger(cfg))
        self.poller = selectors.DefaultSelector()
        self.queued: list[TConn] = []

    def enqueue_req(self, conn: TConn) -> None:
        self.queued.append(conn)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def conn_on(sock: socket.socket) -> TConn:
    return TConn(Config(), sock, ("127.0.0.1", 1), ("127.0.0.1", 2))


def test_every_connection_goes_through_enqueue_req(pair):
    w = Recorder()
    # accepted: counted, and handed on at once
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        w.accept(listener)
        client.close()
    assert w.nr_conns == 1 and len(w.queued) == 1 and isinstance(w.queued[0], TConn)
    w.queued[0].sock.close()
    # kept alive, then readable
    conn = conn_on(pair[0])
    w.keepalived_conns.append(conn)
    w.poller.register(conn.sock, selectors.EVENT_READ)
    w.on_client_socket_readable(conn, conn.sock)
    assert w.queued[-1] is conn
    # deferred (no first byte in time), then readable: marked data_ready
    w.pending_conns.append(conn)
    w.poller.register(conn.sock, selectors.EVENT_READ)
    w.on_pending_socket_readable(conn, conn.sock)
    assert w.queued[-1] is conn and conn.data_ready


def finished(result: object) -> Future:
    fs: Future = Future()
    fs.set_result(result)
    return fs


def test_finish_request_routes_read_ahead_and_counts_closes(pair):
    w = Recorder()
    conn = conn_on(pair[0])
    conn.init()
    conn.parser.unreader.unread(PIPELINED)  # a request the parser read ahead
    w.nr_conns = 1
    w.finish_request(conn, finished(True))  # keep-alive with bytes in hand: straight on
    assert w.queued == [conn] and w.nr_conns == 1
    w.finish_request(conn, finished(False))  # not kept alive: closed and uncounted
    assert w.nr_conns == 0


def test_unreader_holds_the_request_and_gives_back_the_read_ahead(pair):
    conn = conn_on(pair[0])
    assert conn.parser is None and not conn.data_ready  # before init, as enqueue_req checks
    conn.init()
    conn.parser.unreader.unread(REQUEST + PIPELINED)
    req = next(conn.parser)
    assert req.path == "/a"
    # what the parser read past the first request, without touching the socket
    pair[0].setblocking(False)
    assert conn.parser.unreader.take_buffered() == PIPELINED
    assert conn.parser.unreader.take_buffered() == b""


def test_handle_skips_the_wait_when_data_ready(pair):
    seen = []

    class Serving(Recorder):
        def handle_request(self, req, conn):
            seen.append(req.path)
            return False

    w = Serving()
    conn = conn_on(pair[0])
    conn.data_ready = True
    conn.init()
    conn.parser.unreader.unread(REQUEST)
    pair[0].settimeout(2)  # had handle waited on the (empty) socket, this would show
    assert w.handle(conn) is False
    assert seen == ["/a"]


def test_handle_reports_parse_errors_to_handle_error(pair):
    errors = []

    class Refusing(Recorder):
        def handle_error(self, req, client, addr, exc):
            errors.append(exc)

    w = Refusing()
    conn = conn_on(pair[0])
    conn.data_ready = True
    conn.init()
    conn.parser.unreader.unread(b"GET /a HTTP/1.1\r\nBad Name: x\r\n\r\n")
    w.handle(conn)
    assert len(errors) == 1 and isinstance(errors[0], http_errors.InvalidHeaderName)
    assert error_map.parse_error(errors[0]).code == "invalid_request"


def parse(raw: bytes, sock: socket.socket):
    conn = conn_on(sock)
    conn.init()
    conn.parser.unreader.unread(raw)
    return next(conn.parser)


@pytest.mark.parametrize("expect", [True, False])
def test_expect_continue_is_what_sends_100(pair, expect):
    raw = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx"
    req = parse(raw, pair[0])
    assert req._expected_100_continue is True
    req._expected_100_continue = expect  # the worker sets it False: it sent one itself
    wsgi.create(req, pair[0], ("127.0.0.1", 1), ("127.0.0.1", 2), Config())
    pair[1].setblocking(False)
    try:
        sent = pair[1].recv(100)
    except BlockingIOError:
        sent = b""
    assert sent == (b"HTTP/1.1 100 Continue\r\n\r\n" if expect else b"")


def test_force_close(pair):
    req = parse(REQUEST, pair[0])
    assert not req.should_close()
    req.force_close()
    assert req.should_close()


def test_murder_pending_runs_on_every_turn_of_the_event_loop():
    # The worker drops slow requests from murder_pending; nothing else of ours is polled.
    assert "self.murder_pending()" in inspect.getsource(ThreadWorker.run)


def test_parse_error_classes():
    names = [
        "InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion", "InvalidHeaderName",
        "ObsoleteFolding", "InvalidHeader", "UnsupportedTransferCoding", "InvalidChunkSize",
        "ChunkMissingTerminator", "InvalidChunkExtension", "ParseException", "LimitRequestLine",
        "LimitRequestHeaders", "ExpectationFailed", "InvalidResponseHeader",
        "InvalidResponseHeaderName", "NoMoreData",
    ]  # fmt: skip
    for name in names:
        kind = getattr(http_errors, name, None)
        assert isinstance(kind, type) and issubclass(kind, Exception), name
