"""Load and overload, briefly: benchmarks/load.py against a real server (16 clients, no errors,
steady memory), a tiny overload run that must shed load with 503 `overloaded` and stay up, and
the three overload answers (queue full, queue timeout, pixels in flight) in-process."""

from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.load import main, run_load, run_soak
from devtools.images import make_jpeg
from devtools.server import FunctionServer

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "function" / "main.py")


@pytest.fixture(scope="module")
def server(model_dir):
    with FunctionServer(model_dir) as s:
        yield s


def test_sixteen_clients_no_errors_and_steady_memory(server):
    report = run_load(server, requests_total=120, concurrency=16, size=64)
    print(report.render())
    assert report.ok, report.render()
    v = report.values
    assert v["errors"] == 0 and len(report.outcomes) == 120
    assert 0 < v["p50_ms"] <= v["p95_ms"] <= v["p99_ms"]
    assert v["throughput"] > 0
    # RSS is really measured (the worker, not a missing file), and 120 requests don't inflate it
    assert 20 * 1024 < v["rss_before_kib"] <= v["rss_peak_kib"]
    assert v["rss_after_kib"] < 1.5 * v["rss_before_kib"]


def test_short_soak_has_no_rss_growth(server):
    """The worker's idle memory after each of 5 batches of 120 requests: a loaded machine makes
    the soak slower, never red; a leak of a third of a decoded 64x64 photo a request fails it
    (benchmarks/load.py, MAX_LEAK_KIB_PER_REQUEST)."""
    report = run_soak(server, requests_total=600, warmup_requests=200, concurrency=16, size=64)
    print(report.render())
    assert report.ok, report.render()
    assert "rss_kib_per_request" in report.values
    assert len(report.outcomes) == 800


def test_overload_sheds_with_503_and_stays_up(model_dir, capsys):
    # 32 clients against 1 inference slot and 2 waiting places: most get 503 at once.
    code = main(
        ["--model-dir", str(model_dir), "--overload", "--overload-clients", "32",
         "--requests", "96", "--size", "64", "--max-queued", "2", "--env", "THREADS=8"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert re.search(r"status\s+200: \d+, 503 overloaded: \d+\n", out), out  # nothing else
    assert re.search(r"healthy afterwards\s+True", out)
    assert "all checks passed" in out


# --- the two overload answers, in-process -----------------------------------------------------


JPEG = make_jpeg(32)


def post(client):
    return client.post("/", data=JPEG, content_type="image/jpeg")


def assert_overloaded(r) -> str:
    assert r.status_code == 503 and r.json["error"]["code"] == "overloaded"
    assert int(r.headers["Retry-After"]) > 0
    return r.json["error"]["message"]


def test_a_request_waits_for_a_slot_then_gets_503(make_client):
    client = make_client(QUEUE_TIMEOUT_S="1", MAX_CONCURRENT_RUNS="1")
    slots = client.module.instance().admission.slots
    slots.acquire()  # the only inference slot is busy
    try:
        t0 = time.perf_counter()
        message = assert_overloaded(post(client))
        assert 0.9 < time.perf_counter() - t0 < 5  # waited QUEUE_TIMEOUT_S, then gave up
        assert "1 s" in message
    finally:
        slots.release()
    assert post(client).status_code == 200


def wait_until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_full_queue_answers_503_at_once(make_client):
    client = make_client(QUEUE_TIMEOUT_S="30", MAX_CONCURRENT_RUNS="1", MAX_QUEUED_REQUESTS="1")
    admission = client.module.instance().admission
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(post(client))) for _ in range(2)]
    admission.slots.acquire()  # the one slot is busy, so admitted requests wait for it
    try:
        for t in threads:  # 1 run + 1 queued = 2 places: these two take them and wait
            t.start()
        wait_until(lambda: admission.admitted == 2)
        t0 = time.perf_counter()
        message = assert_overloaded(post(client))  # the third is refused at once
        assert time.perf_counter() - t0 < 1  # not after QUEUE_TIMEOUT_S
        assert "MAX_QUEUED_REQUESTS" in message
    finally:
        admission.slots.release()
    for t in threads:
        t.join(timeout=30)
    assert [r.status_code for r in answers] == [200, 200]  # the queued ones were served
    assert admission.admitted == 0  # every place given back
    assert Image.open(io.BytesIO(post(client).data)).size == (32, 32)


def test_decoded_pixels_in_flight_are_bounded(make_client):
    client = make_client(MAX_INFLIGHT_PIXELS="1500", QUEUE_TIMEOUT_S="1")
    admission = client.module.instance().admission
    assert admission.max_inflight_pixels == 1500
    with admission.admit(1000):  # another request's 1,000 pixels are being processed
        t0 = time.perf_counter()
        message = assert_overloaded(post(client))  # its 32x32 = 1,024 more would exceed 1,500
        assert 0.9 < time.perf_counter() - t0 < 5  # waited QUEUE_TIMEOUT_S for room, then gave up
        assert "MAX_INFLIGHT_PIXELS" in message
    assert post(client).status_code == 200  # alone, it is let in
    assert (admission.admitted, admission.inflight_pixels) == (0, 0)


def test_the_default_pixel_bound_comes_from_the_memory_limit(make_client):
    from stylefn.ops import memory

    admission = make_client().module.instance().admission
    assert admission.max_inflight_pixels == memory.default_inflight_pixels(40_000_000)
    assert admission.max_inflight_pixels >= 40_000_000  # never less than one largest image
