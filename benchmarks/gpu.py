#!/usr/bin/env python3
"""GPU latency, throughput and cold start of the style networks (finishes in ~2 min on an H100).

    python -m benchmarks.gpu                      # both archs, 512/1024/2048, every variant
    python -m benchmarks.gpu --sizes 512 --json out/gpu.json

PyTorch eager in fp32 (cuDNN uses TF32 for convolutions by default), bf16 autocast, and both in
channels_last; ONNX Runtime with the CUDA provider (fp32 and fp16 models, plain `run` and IO
binding with the image already on the GPU) when the installed onnxruntime has it. Weights are
random: the time of a convolution does not depend on its values. Latency is one image (median,
min, max of --iters CUDA-event-timed runs after warm-up); throughput is a batch of images of
2**22 pixels in total (16 at 512). Cold start is a new process: import, build the network, load
weights (a random-weight checkpoint written beforehand, loaded onto the GPU), stylize one
512x512 image, measured from before the process starts to its exit. Then the full-resolution
graphs (benchmarks/gpu_graphs.py): CUDA against CPU parity and latency at 512/1024/2048 and
12 MP, and 12 MP end to end (network and graphs), as a second table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.latency import time_ms
from training.model import PRESETS, TransformerNet

VARIANTS = {  # name: (dtype for autocast or None, memory format)
    "torch fp32": (None, torch.contiguous_format),
    "torch bf16": (torch.bfloat16, torch.contiguous_format),
    "torch fp32 channels_last": (None, torch.channels_last),
    "torch bf16 channels_last": (torch.bfloat16, torch.channels_last),
}

# Only what serving one image from a checkpoint needs: no benchmark modules, no requests.
COLD_START = """
import torch
from training.model import PRESETS, TransformerNet
net = TransformerNet(PRESETS[{arch!r}])
net.load_state_dict(torch.load({weights!r}, map_location="cpu", weights_only=True))
net = net.cuda().eval()
x = torch.rand(1, 3, 512, 512, device="cuda") * 255
with torch.inference_mode():
    y = net(x).clamp(0, 255).to(torch.uint8).cpu()
"""


def time_cuda(fn, warmup: int, iters: int) -> list[float]:
    """Milliseconds per call, CUDA events around each call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def batch_for(size: int) -> int:
    return max(1, 2**22 // (size * size))


def bench_torch(arch: str, sizes: list[int], warmup: int, iters: int) -> list[dict]:
    rows = []
    for variant, (dtype, fmt) in VARIANTS.items():
        # torch's stubs lack Module.to(memory_format=...), which exists at runtime
        net = TransformerNet(PRESETS[arch]).cuda().eval().to(memory_format=fmt)  # type: ignore[call-overload]
        for size in sizes:
            for batch in (1, batch_for(size)):
                x = (torch.rand(batch, 3, size, size, device="cuda") * 255).to(memory_format=fmt)

                def run(net=net, x=x, dtype=dtype):
                    with (
                        torch.inference_mode(),
                        torch.autocast("cuda", dtype or torch.bfloat16, enabled=dtype is not None),
                    ):
                        return net(x)

                t = time_cuda(run, warmup, iters if batch == 1 else max(3, iters // 2))
                rows.append(row(arch, variant, size, batch, t))
                print(fmt_row(rows[-1]), flush=True)
        del net
        torch.cuda.empty_cache()
    return rows


def bench_ort(arch: str, sizes: list[int], warmup: int, iters: int, workdir: Path) -> list[dict]:
    import numpy as np
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(
            f"onnxruntime {ort.__version__}: no CUDA provider "
            f"({ort.get_available_providers()}); ONNX Runtime GPU rows skipped",
            flush=True,
        )
        return []
    from export.onnx_export import export_onnx  # needs onnx; only reached with a CUDA build

    rows = []
    net = TransformerNet(PRESETS[arch]).eval()
    for precision in ("fp32", "fp16"):
        path = workdir / f"{arch}.{precision}.onnx"
        export_onnx(net, path, fp16=precision == "fp16")
        session = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])
        for size in sizes:
            image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
            t = time_ms(partial(session.run, None, {"image": image}), warmup, iters)
            rows.append(row(arch, f"ort cuda {precision}", size, 1, t))
            print(fmt_row(rows[-1]), flush=True)
            binding = session.io_binding()
            binding.bind_ortvalue_input("image", ort.OrtValue.ortvalue_from_numpy(image, "cuda", 0))
            binding.bind_output("stylized", "cuda")
            t = time_ms(partial(session.run_with_iobinding, binding), warmup, iters)
            rows.append(row(arch, f"ort cuda {precision} iobinding", size, 1, t))
            print(fmt_row(rows[-1]), flush=True)
    return rows


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def cold_start(arch: str, workdir: Path) -> dict:
    """A new process that imports torch, builds the network, loads its weights from disk and
    stylizes one image; the weights are written first, outside the timing."""
    weights = workdir / f"{arch}.weights.pt"
    torch.save(TransformerNet(PRESETS[arch]).state_dict(), weights)
    script = COLD_START.format(arch=arch, weights=str(weights))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True)
    return {"arch": arch, "cold_start_s": time.perf_counter() - t0}


def row(arch: str, variant: str, size: int, batch: int, times: list[float]) -> dict:
    median = statistics.median(times)
    return {
        "arch": arch,
        "variant": variant,
        "size": size,
        "batch": batch,
        "median_ms": median,
        "min_ms": min(times),
        "max_ms": max(times),
        "images_per_s": batch * 1000.0 / median,
    }


def fmt_row(r: dict) -> str:
    return (
        f"| {r['arch']:8s} | {r['variant']:28s} | {r['size']:5d} | {r['batch']:5d} | "
        f"{r['median_ms']:9.2f} | {r['min_ms']:8.2f} | {r['max_ms']:8.2f} | "
        f"{r['images_per_s']:9.1f} |"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--archs", nargs="+", default=list(PRESETS))
    p.add_argument("--sizes", nargs="+", type=int, default=[512, 1024, 2048])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/gpu_bench"))
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | "
        f"cuDNN {torch.backends.cudnn.version()} | TF32 convs {torch.backends.cudnn.allow_tf32}"
    )
    print(
        "| arch     | variant                      |  size | batch | median ms |   min ms |"
        "   max ms |    img/s |"
    )
    rows = []
    for arch in args.archs:
        rows += bench_torch(arch, args.sizes, args.warmup, args.iters)
        rows += bench_ort(arch, args.sizes, args.warmup, args.iters, args.workdir)
    graphs = []
    if "CUDAExecutionProvider" in _ort_providers():
        from benchmarks.gpu_graphs import HEADER, bench_graphs
        from benchmarks.gpu_graphs import fmt_row as fmt_graph

        print(HEADER)
        network = Path(__file__).resolve().parents[1] / "function/models/bundled.fast.onnx"
        for r in bench_graphs("CUDAExecutionProvider", args.warmup, args.iters, network):
            graphs.append(r)
            print(fmt_graph(r), flush=True)
    starts = [cold_start(arch, args.workdir) for arch in args.archs]
    for s in starts:
        print(
            f"cold start {s['arch']}: {s['cold_start_s']:.2f} s (new process to first 512x512 "
            "image)"
        )
    if args.json:
        report = {"rows": rows, "graphs": graphs, "cold_start": starts}
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
