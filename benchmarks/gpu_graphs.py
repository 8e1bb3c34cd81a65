#!/usr/bin/env python3
"""The full-resolution graphs (function/graphs/) on ONNX Runtime's CUDA provider: parity with the
CPU provider and latency, for benchmarks/gpu.py's table (it calls `bench_graphs`).

    python -m benchmarks.gpu_graphs                  # on CUDA (needs onnxruntime-gpu and a GPU)
    python -m benchmarks.gpu_graphs --provider cpu   # the same rows on the CPU, to try it here

Rows: the guide and strip graphs together (imaging/upsample.Upsampler, strips as served) on a
generated photo of 512, 1024 and 2048 px square and 12 MP (4032x3024), its painting made at the
paint size of stroke_scale 1 (a generated image: the graphs' time does not depend on it), strength
0.8 with colour preservation (every part of the graph runs); and "12 MP end to end", one style
network run at 1024x768 plus the graphs, both on the provider. Parity: the largest grey-level
difference from the CPU provider's result. fp32 only: the graphs carry photo-sized sums in grey
levels, and their cost is memory traffic, which fp16 halves only where Resize has an fp16 kernel.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.latency import time_ms
from devtools.images import make_photo
from stylefn.imaging.full_resolution import paint_size
from stylefn.imaging.upsample import Finish, Upsampler
from stylefn.styles.mix import one_style_feed
from stylefn.styles.registry import available_cpus, session_options

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}
SIZES = {"512": (512, 512), "1024": (1024, 1024), "2048": (2048, 2048), "12 MP": (4032, 3024)}
FINISH = Finish(0.8, preserve_color=True)


def _upsampler(provider: str) -> Upsampler:
    options = session_options(available_cpus(), arena=True, spinning=False)  # as instance.py
    guide, strips = Upsampler.paths()
    return Upsampler(
        ort.InferenceSession(str(guide), options, providers=[provider]),
        ort.InferenceSession(str(strips), options, providers=[provider]),
    )


def bench_graphs(provider: str, warmup: int, iters: int, network: Path) -> list[dict]:
    """One row per size and one end-to-end row; each with `parity` against the CPU."""
    run, cpu = _upsampler(provider), _upsampler(PROVIDERS["cpu"])
    style = ort.InferenceSession(
        str(network), session_options(available_cpus()), providers=[provider]
    )
    rows = []
    for name, (w, h) in SIZES.items():
        photo = np.asarray(make_photo(w, h, seed=1))
        pw, ph = paint_size(w, h, 1.0, 10**9)
        small = np.asarray(make_photo(pw, ph, seed=1))
        painted = np.asarray(make_photo(pw, ph, seed=2))
        upsample = partial(run, photo, painted, small, FINISH)
        ours = upsample().astype(int)
        parity = int(np.abs(ours - cpu(photo, painted, small, FINISH)).max())
        rows.append(_row("graphs", name, time_ms(upsample, warmup, iters), parity))
        if name == "12 MP":
            whole = partial(_end_to_end, style, run, photo, small)
            rows.append(_row("network + graphs", name, time_ms(whole, warmup, iters), parity))
    return rows


def _end_to_end(
    style: ort.InferenceSession, run: Upsampler, photo: np.ndarray, small: np.ndarray
) -> np.ndarray:
    (painted,) = style.run(["stylized"], {"image": small[None], **one_style_feed(style)})
    return run(photo, painted[0], small, FINISH)


def _row(what: str, size: str, times: list[float], parity: int) -> dict:
    return {
        "variant": f"ort {what} fp32",
        "size": size,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "parity_max_grey": parity,
    }


def fmt_row(r: dict) -> str:
    return (
        f"| {r['variant']:30s} | {r['size']:>6s} | {r['median_ms']:9.2f} | {r['min_ms']:8.2f} | "
        f"{r['max_ms']:8.2f} | {r['parity_max_grey']:>15d} |"
    )


HEADER = "| graphs | photo | median ms | min ms | max ms | max diff vs CPU |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="cuda")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--network", type=Path,
                   default=ROOT / "function" / "models" / "bundled.fast.onnx")  # fmt: skip
    args = p.parse_args()
    provider = PROVIDERS[args.provider]
    if provider not in ort.get_available_providers():
        print(f"error: onnxruntime {ort.__version__} has no {provider}", file=sys.stderr)
        return 2
    print(HEADER)
    for r in bench_graphs(provider, args.warmup, args.iters, args.network):
        print(fmt_row(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
