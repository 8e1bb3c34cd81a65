#!/usr/bin/env python3
"""Cold start: process start to the first answers of a new function server on 127.0.0.1.

    python -m benchmarks.cold_start                 # 5 starts on function/models
    python -m benchmarks.cold_start --runs 10 --model-dir runs/models

Each run starts the function as served (devtools.server.FunctionServer) and,
from the moment before the spawn, polls every 10 ms: first `GET /healthz` answered 200, then
the first `POST /` of a 256x256 JPEG answered 200 (the default style and arch). Prints both
per run and their medians; the server is stopped after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from devtools.images import make_jpeg
from devtools.server import MAIN, FunctionServer
from export.onnx_export import style_models


def first_ok(call: Callable[[], bool], deadline: float) -> float:
    """Poll `call` until it returns True; the monotonic time it did."""
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if call():
                return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError("the server did not answer within the deadline")


def one_start(model_dir: Path, jpeg: bytes) -> tuple[float, float]:
    server = FunctionServer(model_dir)
    url = server.url
    t0 = time.monotonic()
    server.start()
    try:
        deadline = t0 + 60
        healthy = first_ok(lambda: requests.get(url + "/healthz", timeout=1).ok, deadline)
        headers = {"Content-Type": "image/jpeg"}
        stylized = first_ok(
            lambda: requests.post(url, data=jpeg, headers=headers, timeout=10).ok, deadline
        )
        return healthy - t0, stylized - t0
    finally:
        server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=MAIN.parent / "models")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    jpeg = make_jpeg(256)
    models = style_models(args.model_dir)
    print(f"{len(models)} models in {args.model_dir}")
    print("| run | first /healthz 200 s | first stylized image s |\n|---|---:|---:|")
    results = []
    for i in range(args.runs):
        results.append(one_start(args.model_dir, jpeg))
        print(f"| {i + 1} | {results[-1][0]:.2f} | {results[-1][1]:.2f} |", flush=True)
    healthz, image = zip(*results, strict=True)
    print(f"| median | {statistics.median(healthz):.2f} | {statistics.median(image):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
