#!/usr/bin/env python3
"""Cold start: process start to the first answers of a new function server on 127.0.0.1.

    python benchmarks/cold_start.py                 # 5 starts on function/models
    python benchmarks/cold_start.py --runs 10 --model-dir runs/models

Each run starts `functions-framework --target stylize` in its own process group and, from the
moment before the spawn, polls every 10 ms: first `GET /healthz` answered 200, then the first
`POST /` of a 256x256 JPEG answered 200 (the default style and arch). Prints both per run and
their medians; the server is killed after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import HOST, MAIN, free_port


def first_ok(call, deadline: float) -> float:
    """Poll `call` until it returns True; the monotonic time it did."""
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if call():
                return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError("the server did not answer within the deadline")


def one_start(model_dir: Path, jpeg: bytes) -> tuple[float, float]:
    port = free_port()
    url = f"http://{HOST}:{port}"
    cmd = [sys.executable, "-m", "functions_framework", "--target", "stylize",
           "--source", str(MAIN), "--host", HOST, "--port", str(port)]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "MODEL_DIR": str(model_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = t0 + 60
        healthy = first_ok(lambda: requests.get(url + "/healthz", timeout=1).ok, deadline)
        headers = {"Content-Type": "image/jpeg"}
        stylized = first_ok(
            lambda: requests.post(url, data=jpeg, headers=headers, timeout=10).ok, deadline
        )
        return healthy - t0, stylized - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=MAIN.parent / "models")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
    models = sorted(args.model_dir.glob("*.onnx"))
    print(f"{len(models)} models in {args.model_dir}")
    print("| run | first /healthz 200 s | first stylized image s |\n|---|---:|---:|")
    results = []
    for i in range(args.runs):
        results.append(one_start(args.model_dir, buf.getvalue()))
        print(f"| {i + 1} | {results[-1][0]:.2f} | {results[-1][1]:.2f} |", flush=True)
    healthz, image = zip(*results, strict=True)
    print(f"| median | {statistics.median(healthz):.2f} | {statistics.median(image):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
