#!/usr/bin/env python3
"""Load, soak and overload runs against a real server (gunicorn.conf.py) on 127.0.0.1.

    python -m benchmarks.load                       # 1000 requests, 16 clients, 256x256 JPEG
    python -m benchmarks.load --soak 300            # 10 s warm-up, 5 minutes; RSS sampled; fails on a leak
    python -m benchmarks.load --overload            # QUEUE_TIMEOUT_S=1, 64 clients, 1 slot

The script starts the server itself (devtools.server.FunctionServer; MODEL_DIR from
--model-dir, default function/models) and always stops it. Clients are threads with one requests.Session each, posting raw `image/jpeg` bodies. It prints
a table: errors, status histogram, latency p50/p95/p99, throughput, and the gunicorn worker's
resident memory (VmRSS from /proc) before, in the middle of and after the run.

Exit status 1 when a check fails: any error in a load or soak run (anything but 200), RSS
floor growth of 10 % and 32 MiB or more during a soak (after its warm-up), or, in overload
mode, any answer other than 200 or 503 `overloaded` with Retry-After, a worker that died or was
replaced, or an unhealthy server afterwards.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
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

# A soak fails when the RSS floor grows by more than both: 10 %, and 32 MiB. The absolute part
# because a ~100 MiB worker takes one-off steps (an arena, a buffer size it meets for the first
# time: +14 MiB in one step, then flat, seen on CI) that are 10 % of it and no leak; a leak of
# 10 kB a request passes 32 MiB within a few thousand requests, a 5-minute soak's count.
MAX_SOAK_GROWTH = 0.10
SOAK_SLACK_KIB = 32 * 1024


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


def run_soak(
    server: FunctionServer,
    *,
    duration_s: float,
    concurrency: int,
    size: int,
    warmup_s: float = 10,
    timeout_s: float = 120,
) -> Report:
    """Constant load for `warmup_s + duration_s`, RSS sampled throughout; growth is measured
    over the last `duration_s`. The warm-up absorbs what a worker grows into under this load
    (arenas, caches, ONNX Runtime's buffers: on a slow machine a fresh worker still grew 10 % in
    its fifth second), so what grows after it is a leak. One unbroken run: an idle worker gives
    its memory back (memory.trim), so a pause between the two would undo the warm-up."""
    bodies = [make_jpeg(size, seed) for seed in range(8)]
    post_image(requests.Session(), server.url, bodies[0], timeout_s)
    report = Report(
        f"soak {duration_s:g} s after {warmup_s:g} s of warm-up: "
        f"{describe_setup(server, concurrency, size, bodies[0])}"
    )
    workers_before = server.worker_pids()
    interval = max(0.25, duration_s / 120)
    total_s = warmup_s + duration_s
    with RssSampler(server, interval) as sampler:
        outcomes, wall = drive(
            server.url, bodies, concurrency=concurrency, duration_s=total_s, timeout_s=timeout_s
        )
    summarize(report, outcomes, wall)
    samples = [(t - warmup_s, kib) for t, kib in sampler.samples if t >= warmup_s]
    # The floor (lowest sample) over the first and the last fifth of the run: the requests'
    # buffers in flight come and go above it (with 16 clients and no ORT arena they moved a 4 s
    # run's medians by 13 %), while a leak raises the floor itself.
    window = max(duration_s / 5, interval)
    start = [kib for t, kib in samples if t <= window]
    end = [kib for t, kib in samples if t >= duration_s - window]
    if start and end:
        growth = min(end) / min(start) - 1
        report.values["rss_growth"] = growth
        report.rows.append(
            ("RSS floor: start -> end",
             f"{mib(min(start))} -> {mib(min(end))} ({growth:+.1%})"),
        )  # fmt: skip
        grew_kib = min(end) - min(start)
        report.check(
            growth < MAX_SOAK_GROWTH or grew_kib <= SOAK_SLACK_KIB,
            f"RSS grew {growth:.1%} ({mib(grew_kib)}) during the soak",
        )
    else:
        report.failures.append("too few RSS samples; run the soak longer")
    step = max(1, len(samples) // 10)
    for t, kib in samples[::step]:
        report.rows.append((f"  RSS at {t:6.1f} s", mib(kib)))
    report.rows.append(("worker RSS peak", mib(sampler.peak_kib)))
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
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="soak mode: constant load for SECONDS, RSS growth checked")  # fmt: skip
    p.add_argument("--warmup", type=float, default=10, metavar="SECONDS",
                   help="soak mode: unmeasured load before the soak (10)")  # fmt: skip
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
            report = run_soak(server, duration_s=args.soak, warmup_s=args.warmup,
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
