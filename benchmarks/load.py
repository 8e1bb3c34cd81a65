#!/usr/bin/env python3
"""Load, soak and overload runs against a real server (gunicorn.conf.py) on 127.0.0.1.

    python -m benchmarks.load                       # 1000 requests, 16 clients, 256x256 JPEG
    python -m benchmarks.load --soak 20000          # 1000 requests' warm-up, then 20000; fails on a leak
    python -m benchmarks.load --overload            # QUEUE_TIMEOUT_S=1, 64 clients, 1 slot

The script starts the server itself (devtools.server.FunctionServer; MODEL_DIR from
--model-dir, default function/models) and always stops it. Clients are threads with one requests.Session each, posting raw `image/jpeg` bodies. It prints
a table: errors, status histogram, latency p50/p95/p99, throughput, and the gunicorn worker's
resident memory (VmRSS from /proc) before, in the middle of and after the run.

Exit status 1 when a check fails: any error in a load or soak run (anything but 200), a soak's
idle RSS growing by more than MAX_LEAK_KIB_PER_REQUEST a request (after its warm-up), or, in
overload mode, any answer other than 200 or 503 `overloaded` with Retry-After, a worker that died or was
replaced, or an unhealthy server afterwards.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devtools.images import make_jpeg
from devtools.server import FunctionServer

ROOT = Path(__file__).resolve().parents[1]

# A leak grows the worker by about the same amount with every request, and survives the worker
# going idle, when everything freed goes back to the OS (memory.trim). What a busy worker holds
# above that (requests in flight, free heap kept between them: 90 MiB idle, ~480 MiB busy, seen
# on CI) comes and goes, and when it happens to be sampled depends on how loaded the machine is:
# a check of the busy floor over seconds saw 39-47 MiB of it on a loaded machine and failed. So a
# soak runs SOAK_BATCHES batches of equal request counts after a warm-up, reads the worker's
# resident memory once it is idle after each, and takes the median growth from one batch to the
# next, per request: a one-off step (an arena, a thread's stack, a buffer size met for the first
# time) moves one of those steps, a leak moves all of them. MAX_LEAK_KIB_PER_REQUEST is a third
# of what keeping each request's decoded 64x64 photo (12 KiB) would leak.
SOAK_BATCHES = 5
MAX_LEAK_KIB_PER_REQUEST = 4.0


# --- the clients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    latency_s: float
    code: str | None = None  # error.code of a JSON error
    retry_after: str | None = None
    detail: str = ""


def post_image(session: requests.Session, url: str, body: bytes, timeout_s: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        r = session.post(url + "/", data=body, headers={"Content-Type": "image/jpeg"},
                         timeout=timeout_s)  # fmt: skip
    except requests.RequestException as e:
        return Outcome(0, time.perf_counter() - t0, detail=f"{type(e).__name__}: {e}"[:200])
    latency = time.perf_counter() - t0
    code = None
    if r.status_code != 200:
        try:
            code = r.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "(not a JSON error)"
    return Outcome(r.status_code, latency, code, r.headers.get("Retry-After"))


def drive(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    total: int | None = None,
    duration_s: float | None = None,
    timeout_s: float = 120.0,
    on_done: Callable[[int], None] | None = None,
) -> tuple[list[Outcome], float]:
    """`concurrency` threads post bodies round-robin until `total` requests or `duration_s`
    seconds; returns every outcome and the wall time. `on_done(n)` runs after the n-th answer."""
    if total is None and duration_s is None:
        raise ValueError("give total or duration_s")
    lock = threading.Lock()
    started = done = 0
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    deadline = t0 + duration_s if duration_s is not None else math.inf

    def client() -> None:
        nonlocal started, done
        with requests.Session() as session:
            while True:
                with lock:
                    if (total is not None and started >= total) or time.perf_counter() > deadline:
                        return
                    i = started
                    started += 1
                outcome = post_image(session, url, bodies[i % len(bodies)], timeout_s)
                with lock:
                    outcomes.append(outcome)
                    done += 1
                    n = done
                if on_done is not None:
                    on_done(n)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, time.perf_counter() - t0


class RssSampler:
    """Samples the server's RSS every `interval_s` on a thread: (seconds since start, KiB)."""

    def __init__(self, server: FunctionServer, interval_s: float):
        self.server, self.interval_s = server, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - t0, self.server.rss_kib()))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_kib(self) -> int:
        return max((kib for _, kib in self.samples), default=0)


# --- reports ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


@dataclass
class Report:
    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  # numbers, for tests

    @property
    def ok(self) -> bool:
        return not self.failures

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)

    def render(self) -> str:
        width = max(len(k) for k, _ in self.rows) if self.rows else 10
        lines = [self.title, "-" * max(len(self.title), width + 30)]
        lines += [f"{k:<{width}}  {v}" for k, v in self.rows]
        lines.append("-" * max(len(self.title), width + 30))
        lines += [f"FAIL: {f}" for f in self.failures] or ["all checks passed"]
        return "\n".join(lines)


def histogram(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = collections.Counter(
        f"{o.status} {o.code}" if o.code else str(o.status) if o.status else "no answer"
        for o in outcomes
    )
    return dict(sorted(counts.items()))


def summarize(report: Report, outcomes: list[Outcome], wall_s: float) -> None:
    """Status histogram, errors, latency percentiles and throughput, into the report."""
    report.outcomes = outcomes
    ok = [o.latency_s for o in outcomes if o.status == 200]
    errors = [o for o in outcomes if o.status != 200]
    report.rows.append(("requests", str(len(outcomes))))
    report.rows.append(("status", ", ".join(f"{k}: {v}" for k, v in histogram(outcomes).items())))
    report.rows.append(("errors (not 200)", str(len(errors))))
    if ok:
        p50, p95, p99 = (percentile(ok, q) * 1e3 for q in (50, 95, 99))
        report.values.update(p50_ms=p50, p95_ms=p95, p99_ms=p99)
        report.rows.append(
            ("latency p50 / p95 / p99 (200s)", f"{p50:.0f} / {p95:.0f} / {p99:.0f} ms")
        )
        report.rows.append(("latency max (200s)", f"{max(ok) * 1e3:.0f} ms"))
    throughput = len(ok) / wall_s if wall_s > 0 else 0.0
    report.values.update(errors=len(errors), throughput=throughput, wall_s=wall_s)
    report.rows.append(("throughput (200s)", f"{throughput:.1f} req/s over {wall_s:.1f} s"))
    for o in errors[:3]:  # a few examples, so a failure says what went wrong
        report.rows.append(("example error", f"{o.status} {o.code or ''} {o.detail}".strip()))


def describe_setup(server: FunctionServer, concurrency: int, size: int, body: bytes) -> str:
    provider = requests.get(server.url + "/healthz", timeout=10).json()["provider"]
    return (
        f"{concurrency} clients, {size}x{size} JPEG ({len(body) / 1024:.1f} kB) as raw "
        f"image/jpeg, {provider}, worker pid {server.worker_pids()}"
    )


# --- the three modes --------------------------------------------------------------------------


def run_load(
    server: FunctionServer,
    *,
    requests_total: int,
    concurrency: int,
    size: int,
    timeout_s: float = 120,
) -> Report:
    """A fixed number of requests; RSS before, when half are answered, and after."""
    bodies = [make_jpeg(size, seed) for seed in range(8)]
    post_image(requests.Session(), server.url, bodies[0], timeout_s)  # warm-up, not counted
    report = Report(f"load: {describe_setup(server, concurrency, size, bodies[0])}")
    workers_before = server.worker_pids()
    rss = {"before": server.rss_kib()}

    def on_done(n: int) -> None:
        if n == requests_total // 2:
            rss["middle"] = server.rss_kib()

    with RssSampler(server, 0.25) as sampler:
        outcomes, wall = drive(
            server.url, bodies, concurrency=concurrency, total=requests_total,
            timeout_s=timeout_s, on_done=on_done,
        )  # fmt: skip
    rss["after"] = server.rss_kib()
    summarize(report, outcomes, wall)
    report.rows.append(
        ("worker RSS before / middle / after",
         " / ".join(mib(rss.get(k, 0)) for k in ("before", "middle", "after"))),
    )  # fmt: skip
    report.rows.append(("worker RSS peak", mib(sampler.peak_kib)))
    report.values.update({f"rss_{k}_kib": v for k, v in rss.items()}, rss_peak_kib=sampler.peak_kib)
    report.check(report.values["errors"] == 0, f"{report.values['errors']:g} errors")
    report.check(len(outcomes) == requests_total, f"{len(outcomes)} answers, not {requests_total}")
    report.check(server.worker_pids() == workers_before, "the worker died or was replaced")
    return report


def idle_rss_kib(server: FunctionServer, samples: int = 5, interval_s: float = 0.1) -> int:
    """The worker's resident memory with no request in flight: the lowest of a few readings
    (the last request's buffers are freed, and given back, as it finishes)."""
    readings = []
    for _ in range(samples):
        time.sleep(interval_s)
        readings.append(server.rss_kib())
    return min(readings)


def run_soak(
    server: FunctionServer,
    *,
    requests_total: int,
    concurrency: int,
    size: int,
    warmup_requests: int = 1000,
    timeout_s: float = 120,
) -> Report:
    """`warmup_requests`, then `requests_total` in SOAK_BATCHES batches, each at constant load;
    the worker's idle memory after each batch gives its growth per request (see
    MAX_LEAK_KIB_PER_REQUEST)."""
    bodies = [make_jpeg(size, seed) for seed in range(8)]
    post_image(requests.Session(), server.url, bodies[0], timeout_s)
    report = Report(
        f"soak {requests_total} requests after {warmup_requests} of warm-up: "
        f"{describe_setup(server, concurrency, size, bodies[0])}"
    )
    workers_before = server.worker_pids()
    per_batch = max(1, requests_total // SOAK_BATCHES)
    outcomes: list[Outcome] = []
    wall = 0.0
    idle = []
    with RssSampler(server, 0.25) as sampler:
        for n in (warmup_requests, *[per_batch] * SOAK_BATCHES):
            got, took = drive(
                server.url, bodies, concurrency=concurrency, total=n, timeout_s=timeout_s
            )
            outcomes += got
            wall += took
            idle.append(idle_rss_kib(server))
            report.rows.append((f"idle RSS after {len(outcomes)} requests", mib(idle[-1])))
    summarize(report, outcomes, wall)
    steps = sorted(b - a for a, b in itertools.pairwise(idle))
    per_request = steps[len(steps) // 2] / per_batch  # the median step
    report.values["rss_kib_per_request"] = per_request
    report.rows.append(("idle RSS growth per request (median)", f"{per_request:+.2f} KiB"))
    report.rows.append(("worker RSS peak", mib(sampler.peak_kib)))
    report.check(
        per_request <= MAX_LEAK_KIB_PER_REQUEST,
        f"the idle RSS grew {per_request:.1f} KiB a request (more than "
        f"{MAX_LEAK_KIB_PER_REQUEST:g}): a leak",
    )
    report.check(report.values["errors"] == 0, f"{report.values['errors']:g} errors")
    report.check(server.worker_pids() == workers_before, "the worker died or was replaced")
    return report


def run_overload(
    server: FunctionServer,
    *,
    requests_total: int,
    concurrency: int,
    size: int,
    timeout_s: float = 180,
) -> Report:
    """Far more clients than the server can serve: each request must either wait and succeed or
    get 503 `overloaded` with Retry-After; the worker must survive and stay healthy."""
    bodies = [make_jpeg(size, seed) for seed in range(8)]
    post_image(requests.Session(), server.url, bodies[0], timeout_s)
    env = server.env
    report = Report(
        f"overload: {describe_setup(server, concurrency, size, bodies[0])}, "
        f"QUEUE_TIMEOUT_S={env.get('QUEUE_TIMEOUT_S', '30')}, "
        f"MAX_CONCURRENT_RUNS={env.get('MAX_CONCURRENT_RUNS', 'auto')}, "
        f"MAX_QUEUED_REQUESTS={env.get('MAX_QUEUED_REQUESTS', 'default')}"
    )
    workers_before = server.worker_pids()
    rss_before = server.rss_kib()
    with RssSampler(server, 0.25) as sampler:
        outcomes, wall = drive(
            server.url, bodies, concurrency=concurrency, total=requests_total, timeout_s=timeout_s
        )
    summarize(report, outcomes, wall)
    shed = [o for o in outcomes if o.status == 503]
    if shed:
        shed_ms = [o.latency_s * 1e3 for o in shed]
        report.rows.append(
            ("503 latency p50 / max", f"{percentile(shed_ms, 50):.0f} / {max(shed_ms):.0f} ms")
        )
    report.rows.append(
        ("worker RSS before / peak / after",
         f"{mib(rss_before)} / {mib(sampler.peak_kib)} / {mib(server.rss_kib())}"),
    )  # fmt: skip
    healthy = server.healthy()
    report.rows.append(("healthy afterwards", str(healthy)))
    report.values.update(served=len(outcomes) - len(shed), shed=len(shed))
    wrong = [o for o in outcomes if o.status not in (200, 503)]
    report.check(not wrong, f"{len(wrong)} answers other than 200 or 503: {histogram(wrong)}")
    bad_503 = [o for o in shed if o.code != "overloaded" or not o.retry_after]
    report.check(not bad_503, f"{len(bad_503)} 503s without code overloaded and Retry-After")
    report.check(healthy, "the server is not healthy afterwards")
    report.check(server.worker_pids() == workers_before, "the worker died or was replaced")
    return report


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "function" / "models",
                   help="folder of *.onnx styles (MODEL_DIR); default function/models")  # fmt: skip
    p.add_argument("--requests", type=int,
                   help="requests to send (default: 1000; 4 per client with --overload)")  # fmt: skip
    p.add_argument("--concurrency", type=int, default=16, help="client threads (16)")
    p.add_argument("--size", type=int, default=256, help="side of the square JPEGs sent (256)")
    p.add_argument(
        "--timeout", type=float, default=120, help="per-request client timeout in s (120)"
    )
    p.add_argument("--soak", type=int, metavar="REQUESTS",
                   help="soak mode: REQUESTS measured for RSS growth per request")  # fmt: skip
    p.add_argument("--warmup", type=int, default=1000, metavar="REQUESTS",
                   help="soak mode: unmeasured requests before the soak (1000)")  # fmt: skip
    p.add_argument("--overload", action="store_true",
                   help="overload mode: QUEUE_TIMEOUT_S small, many more clients than slots")  # fmt: skip
    p.add_argument("--overload-clients", type=int, default=64, help="clients in overload mode (64)")
    p.add_argument(
        "--queue-timeout", type=int, default=1, help="QUEUE_TIMEOUT_S in overload mode (1)"
    )
    p.add_argument("--max-queued", type=int, default=None,
                   help="MAX_QUEUED_REQUESTS for the server (default: the server's own)")  # fmt: skip
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra server environment, e.g. MAX_CONCURRENT_RUNS=2")  # fmt: skip
    p.add_argument("--server-log", type=Path, help="keep the server's output in this file")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 4 * args.overload_clients if args.overload else 1000
    if min(args.requests, args.concurrency, args.size, args.overload_clients) < 1:
        p.error("--requests, --concurrency, --size and --overload-clients must be at least 1")
    if args.soak is not None and args.overload:
        p.error("--soak and --overload are separate runs")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.max_queued is not None:
        env["MAX_QUEUED_REQUESTS"] = str(args.max_queued)
    if args.overload:
        env = {"QUEUE_TIMEOUT_S": str(args.queue_timeout), "MAX_CONCURRENT_RUNS": "1", **env}
    if not any(args.model_dir.glob("*.onnx")):
        raise SystemExit(
            f"no *.onnx models in {args.model_dir}: pass --model-dir (export one with "
            "`python -m export ...`, see README)"
        )
    with FunctionServer(args.model_dir, env, log_path=args.server_log) as server:
        if args.soak is not None:
            report = run_soak(server, requests_total=args.soak, warmup_requests=args.warmup,
                              concurrency=args.concurrency, size=args.size,
                              timeout_s=args.timeout)  # fmt: skip
        elif args.overload:
            report = run_overload(server, requests_total=args.requests,
                                  concurrency=args.overload_clients,
                                  size=args.size, timeout_s=args.timeout)  # fmt: skip
        else:
            report = run_load(server, requests_total=args.requests, concurrency=args.concurrency,
                              size=args.size, timeout_s=args.timeout)  # fmt: skip
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
