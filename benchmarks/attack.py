#!/usr/bin/env python3
"""Attacks on a real server on 127.0.0.1 (issue #15's faults), bounded in time, as a table.

    python -m benchmarks.attack                      # every case, ~1-2 minutes on 2 cores
    python -m benchmarks.attack --cases slow bombs   # some of: slow, bombs, http, memory

The script starts the server itself (devtools.server.FunctionServer: gunicorn with
function/gunicorn.conf.py; MODEL_DIR from --model-dir, default function/models), with
HEADER_TIMEOUT_S=5 and BODY_TIMEOUT_S=10 so that slow clients are seen being dropped within the
run (the defaults are 10 and 60 s; --env overrides any of it), and always stops it.

- slow: `--slow-clients` connections (16, twice gunicorn's old 8 threads) send their headers,
  and as many a declared 1 MB body, at one byte a second, while a normal client posts a small
  JPEG every half second; each slow one must be answered 408 or dropped, the normal client
  served in under 2 s throughout.
- bombs: decoder bombs (a progressive JPEG whose scans repeat 1,000 times, an RLE8 BMP of
  40 MP, floods of JPEG segments, GIF comment blocks, PNG chunks, TIFF tags and strips), one at a time
  and 8 scan bombs at once: each refused with a 4xx JSON error within 2 s.
- http: malformed HTTP (a bad chunk size, on a route that reads no body too; chunked bodies over
  MAX_REQUEST_BYTES; a 32 MiB URL; Content-Length with Transfer-Encoding; huge headers; two
  files named `image`; ...): each a JSON 4xx, never a 500 or gunicorn's HTML.
- memory: `--memory-requests` (4) large flat PNGs at once (`--memory-side` 2048 px, `arch`
  johnson where a style has it): the worker's resident memory before, at its peak and 3 s after
  must come back near the start (within 1.5x + 64 MiB).

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from benchmarks.load import RssSampler, mib
from devtools import bombs
from devtools.images import make_jpeg
from devtools.server import FunctionServer

ROOT = Path(__file__).resolve().parents[1]

CASES = ("slow", "bombs", "http", "memory")
ATTACK_ENV = {"HEADER_TIMEOUT_S": "5", "BODY_TIMEOUT_S": "10"}
NORMAL_MAX_S = 2.0  # a normal client's answer, whatever else is going on
BOMB_MAX_S = 2.0  # a refused bomb's answer


@dataclass
class Row:
    case: str
    answers: str  # status histogram
    seconds: float  # the slowest answer
    ok: bool
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def add(self, case: str, answers: str, seconds: float, ok: bool, note: str = "") -> None:
        self.rows.append(Row(case, answers, seconds, ok, note))

    def render(self) -> str:
        head = ("case", "answers", "slowest", "check", "note")
        cells = [(r.case, r.answers, f"{r.seconds:.2f} s", "ok" if r.ok else "FAIL", r.note)
                 for r in self.rows]  # fmt: skip
        widths = [max(len(c[i]) for c in [head, *cells]) for i in range(5)]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                 for row in [head, tuple("-" * w for w in widths), *cells]]  # fmt: skip
        lines += self.notes
        lines.append("all checks passed" if self.ok else "SOME CHECKS FAILED")
        return "\n".join(lines)


# --- raw HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int  # 0: none (closed or reset without a response)
    code: str | None  # error.code of a JSON error
    content_type: str
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.status:
            return "closed"
        return f"{self.status} {self.code}" if self.code else str(self.status)


def parse_answer(data: bytes, seconds: float) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):  # an interim "100 Continue"
        head, _, body = body.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return Answer(0, None, "", seconds)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    code = None
    if headers.get("content-type") == "application/json":
        with contextlib.suppress(ValueError, KeyError, TypeError):
            code = json.loads(body)["error"]["code"]
    return Answer(int(status_line.split()[1]), code, headers.get("content-type", ""), seconds,
                  headers)  # fmt: skip


def send_raw(port: int, data: bytes, timeout_s: float = 20.0) -> Answer:
    """Send `data` on a new connection and read until the server closes it (or a first response
    is complete on a connection kept alive)."""
    t0 = time.perf_counter()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        with contextlib.suppress(OSError):  # refused part-way (a 32 MiB URL): read what came
            sock.sendall(data)
        try:
            while chunk := sock.recv(65536):
                received += chunk
                answer = parse_answer(received, 0)
                length = answer.headers.get("content-length")
                if length and len(received.partition(b"\r\n\r\n")[2]) >= int(length):
                    break
        except OSError:
            pass
    return parse_answer(received, time.perf_counter() - t0)


def histogram(labels: Sequence[str]) -> str:
    return ", ".join(
        f"{k}: {v}" if v > 1 else k for k, v in sorted(collections.Counter(labels).items())
    )


# --- slow clients -----------------------------------------------------------------------------


def slow_client(port: int, preamble: bytes, trickle: bytes, hold_s: float) -> Answer:
    """Send `preamble` at once, then `trickle` one byte a second until the server answers or
    closes, or `hold_s` passes (then the answer is status 0 and `seconds` = hold_s)."""
    t0 = time.perf_counter()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(preamble)
            for byte in trickle:
                if time.perf_counter() - t0 > hold_s:
                    break
                readable, _, _ = select.select([sock], [], [], 1.0)
                if readable:
                    while chunk := sock.recv(65536):
                        received += chunk
                    break
                sock.send(bytes([byte]))
        except OSError:  # the server closed it: reset, broken pipe
            pass
    return parse_answer(received, time.perf_counter() - t0)


def normal_client(
    url: str, body: bytes, stop: threading.Event, period_s: float = 0.5
) -> list[Answer]:
    answers = []
    with requests.Session() as http:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = http.post(url + "/", data=body, headers={"Content-Type": "image/jpeg"},
                              timeout=30)  # fmt: skip
                answers.append(Answer(r.status_code, None, r.headers.get("Content-Type", ""),
                                      time.perf_counter() - t0))  # fmt: skip
            except requests.RequestException:
                answers.append(Answer(0, None, "", time.perf_counter() - t0))
            stop.wait(period_s)
    return answers


def run_slow(
    server: FunctionServer,
    table: Table,
    *,
    clients: int = 16,
    hold_s: float = 14,
    body_bytes: int = 1_000_000,
) -> None:
    """`clients` slow-header and `clients` slow-body connections (declaring `body_bytes`)
    against a normal client."""
    headers = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: %d\r\n\r\n" % body_bytes
    )
    kinds = {
        "slow headers (1 B/s)": (b"", headers),
        f"slow {body_bytes / 1e6:g} MB body (1 B/s)": (headers, b"\xff" * body_bytes),
    }
    stop = threading.Event()
    with ThreadPoolExecutor(2 * clients + 1) as pool:
        probe = pool.submit(normal_client, server.url, make_jpeg(64), stop)
        time.sleep(1.0)  # the normal client's first answers, before the attack
        futures = {name: [pool.submit(slow_client, server.port, pre, trickle, hold_s)
                          for _ in range(clients)]
                   for name, (pre, trickle) in kinds.items()}  # fmt: skip
        results = {name: [f.result() for f in fs] for name, fs in futures.items()}
        stop.set()
        normal = probe.result()
    for name, answers in results.items():
        ended = [a for a in answers if a.status == 408 or (a.status == 0 and a.seconds < hold_s)]
        table.add(f"{clients} x {name}", histogram([a.label for a in answers]),
                  max(a.seconds for a in answers), len(ended) == len(answers),
                  "each answered 408 (or dropped) before the run's end")  # fmt: skip
    worst = max((a.seconds for a in normal), default=0.0)
    served = all(a.status == 200 for a in normal) and bool(normal)
    table.add("normal client meanwhile", histogram([a.label for a in normal]), worst,
              served and worst < NORMAL_MAX_S, f"every answer 200 in < {NORMAL_MAX_S:g} s")  # fmt: skip


# --- decoder bombs ----------------------------------------------------------------------------


def bomb_cases() -> list[tuple[str, bytes, str]]:
    return [
        ("progressive JPEG, scans x1000", bombs.progressive_scan_bomb(1000), "image/jpeg"),
        ("RLE8 BMP 6400x6250 (26 kB)", bombs.bmp_rle8(6400, 6250), "image/bmp"),
        ("JPEG, 20 MB of empty APP1", bombs.jpeg_app_flood(20_000_000), "image/jpeg"),
        ("GIF, 18 MB of comment blocks", bombs.gif_comment_flood(18_000_000), "image/gif"),
        ("PNG, 1M empty chunks", bombs.png_chunk_flood(1_000_000), "image/png"),
        ("TIFF, 5000 tags", bombs.tiff_tag_flood(5000), "image/tiff"),
        ("TIFF, 2.5 M one-row strips", bombs.tiff_strip_flood(2_500_000), "image/tiff"),
    ]


def post(
    url: str, body: bytes, content_type: str, query: str = "", timeout_s: float = 120
) -> Answer:
    t0 = time.perf_counter()
    try:
        r = requests.post(url + "/" + query, data=body, headers={"Content-Type": content_type},
                          timeout=timeout_s)  # fmt: skip
    except requests.RequestException:
        return Answer(0, None, "", time.perf_counter() - t0)
    code = None
    if r.headers.get("Content-Type") == "application/json" and r.status_code >= 400:
        code = r.json()["error"]["code"]
    return Answer(r.status_code, code, r.headers.get("Content-Type", ""), time.perf_counter() - t0)


def refused(answer: Answer) -> bool:
    return 400 <= answer.status < 500 and answer.code is not None


def run_bombs(server: FunctionServer, table: Table) -> None:
    rss_before = server.rss_kib()
    cases = bomb_cases()
    for name, body, content_type in cases:
        a = post(server.url, body, content_type)
        table.add(name, a.label, a.seconds, refused(a) and a.seconds < BOMB_MAX_S,
                  f"{len(body) / 1e3:,.0f} kB, a 4xx JSON in < {BOMB_MAX_S:g} s")  # fmt: skip
    scan_bomb = cases[0][1]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server.url, scan_bomb, "image/jpeg"), range(8)))
    worst = max(a.seconds for a in answers)
    table.add("8 scan bombs at once", histogram([a.label for a in answers]), worst,
              all(refused(a) for a in answers) and worst < BOMB_MAX_S)  # fmt: skip
    grew = server.rss_kib() - rss_before
    table.notes.append(
        f"worker RSS across the bombs: {mib(rss_before)} -> {mib(rss_before + grew)}"
    )


# --- malformed HTTP ---------------------------------------------------------------------------


def chunked(data: bytes, size: int = 65536) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def multipart_two_images(jpeg: bytes) -> bytes:
    part = (b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n")  # fmt: skip
    return part * 2 + b"--xx--\r\n"


def http_cases(max_request_bytes: int) -> list[tuple[str, bytes, int]]:
    """(name, raw request, expected status)."""
    jpeg = make_jpeg(32)
    host = b"Host: 127.0.0.1\r\n"
    over = b"\0" * (max_request_bytes + 1)
    two = multipart_two_images(jpeg)
    return [
        ("bad chunk size (POST /)", b"POST / HTTP/1.1\r\n" + host + b"Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("bad chunk size (GET /healthz)", b"GET /healthz HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        ("chunked raw body over the limit", b"POST / HTTP/1.1\r\n" + host + b"Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(over), 413),
        ("chunked JSON body over the limit", b"POST / HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b'{"image": "' + b"A" * (max_request_bytes + 1) + b'"}'), 413),
        ("32 MiB URL", b"GET /?" + b"a" * (32 << 20) + b" HTTP/1.1\r\n" + host + b"\r\n", 414),
        ("Content-Length + Transfer-Encoding", b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("bad Content-Length", b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 12x\r\n\r\n", 400),
        ("two Content-Lengths", b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
        ("a 100 kB header", b"GET /healthz HTTP/1.1\r\n" + host + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
        ("200 headers", b"GET /healthz HTTP/1.1\r\n" + host + b"".join(b"X-H%d: a\r\n" % i for i in range(200)) + b"\r\n", 431),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n", 400),
        ("bare LF line ends", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", 400),
        ("Expect: something", b"POST / HTTP/1.1\r\n" + host + b"Expect: teapot\r\nContent-Length: 0\r\n\r\n", 417),
        ("WebSocket upgrade", b"GET / HTTP/1.1\r\n" + host + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n", 400),
        ("chunk size over the limit", b"POST / HTTP/1.1\r\n" + host + b"Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", 413),
        ("two files named image", b"POST / HTTP/1.1\r\n" + host + b"Content-Type: multipart/form-data; boundary=xx\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(two) + two, 400),
    ]  # fmt: skip


def run_http(server: FunctionServer, table: Table, max_request_bytes: int) -> None:
    for name, data, expected in http_cases(max_request_bytes):
        a = send_raw(server.port, data)
        ok = a.status == expected and a.content_type == "application/json" and a.code is not None
        table.add(name, a.label, a.seconds, ok, f"{len(data):,} bytes sent, expected {expected}")
    # A 413 from the header says Connection: close (before: keep-alive, and then silence).
    a = send_raw(server.port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (max_request_bytes + 1), 10)  # fmt: skip
    table.add("413 before the body", a.label, a.seconds,
              a.status == 413 and a.headers.get("connection") == "close",
              f"Connection: {a.headers.get('connection')}")  # fmt: skip
    r = requests.get(server.url + "/healthz", headers={"X-Cloud-Trace-Context": "<script>x</script>/1"}, timeout=10)  # fmt: skip
    echoed = "<" in r.headers.get("X-Request-Id", "<")
    table.add("trace header not echoed", str(r.status_code), r.elapsed.total_seconds(),
              not echoed and r.headers.get("X-Content-Type-Options") == "nosniff",
              "X-Request-Id fresh, X-Content-Type-Options: nosniff")  # fmt: skip


# --- memory -----------------------------------------------------------------------------------


def run_memory(
    server: FunctionServer, table: Table, *, side: int = 2048, requests_at_once: int = 4
) -> None:
    styles = requests.get(server.url + "/styles", timeout=10).json()["styles"]
    johnson = [s["name"] for s in styles if "johnson" in s["archs"]]
    query = f"?max_size={side}" + (f"&arch=johnson&style={johnson[0]}" if johnson else "")
    png = bombs.flat_png(side, side)
    time.sleep(1.0)
    baseline = server.rss_kib()
    with RssSampler(server, 0.2) as sampler, ThreadPoolExecutor(requests_at_once) as pool:
        answers = list(pool.map(lambda _: post(server.url, png, "image/png", query, 300),
                                range(requests_at_once)))  # fmt: skip
    time.sleep(3.0)
    after = server.rss_kib()
    ok = after < 1.5 * baseline + 64 * 1024 and all(a.status in (200, 503) for a in answers)
    arch = "johnson" if johnson else "default arch"
    table.add(f"{requests_at_once} x {side}x{side} PNG ({len(png) / 1e3:.0f} kB), {arch}",
              histogram([a.label for a in answers]), max(a.seconds for a in answers), ok,
              f"RSS {mib(baseline)} -> peak {mib(sampler.peak_kib)} -> {mib(after)} after 3 s")  # fmt: skip


# --- command line -----------------------------------------------------------------------------


def run(server: FunctionServer, cases: Sequence[str], args: argparse.Namespace) -> Table:
    table = Table()
    runners: dict[str, Callable[[], None]] = {
        "slow": lambda: run_slow(server, table, clients=args.slow_clients, hold_s=args.hold),
        "bombs": lambda: run_bombs(server, table),
        "http": lambda: run_http(server, table, int(server.env.get("MAX_REQUEST_BYTES", 20 << 20))),
        "memory": lambda: run_memory(
            server, table, side=args.memory_side, requests_at_once=args.memory_requests
        ),
    }
    for case in cases:
        runners[case]()
    healthy = server.healthy()
    table.add("healthy afterwards", "200" if healthy else "no", 0.0, healthy)
    return table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "function" / "models",
                   help="folder of *.onnx styles (MODEL_DIR); default function/models")  # fmt: skip
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument(
        "--slow-clients", type=int, default=16, help="slow connections of each kind (16)"
    )
    p.add_argument("--hold", type=float, default=14, help="how long a slow client trickles, s (14)")
    p.add_argument("--memory-side", type=int, default=2048, help="side of the memory case's PNGs")
    p.add_argument("--memory-requests", type=int, default=4, help="memory case: PNGs at once (4)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="server environment, e.g. THREADS=8 (after HEADER_TIMEOUT_S=5, BODY_TIMEOUT_S=10)")  # fmt: skip
    p.add_argument("--server-log", type=Path, help="keep the server's output in this file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = {**ATTACK_ENV, **dict(kv.split("=", 1) for kv in args.env)}
    if not any(args.model_dir.glob("*.onnx")):
        raise SystemExit(f"no *.onnx models in {args.model_dir}: pass --model-dir")
    with FunctionServer(args.model_dir, env, log_path=args.server_log) as server:
        t0 = time.perf_counter()
        table = run(server, args.cases, args)
        table.notes.insert(0, f"{time.perf_counter() - t0:.0f} s; server env {env}")
    print(table.render())
    return 0 if table.ok else 1


if __name__ == "__main__":
    sys.exit(main())
