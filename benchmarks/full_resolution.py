#!/usr/bin/env python3
"""Phone-sized photos through a real server on 127.0.0.1: time, worker memory, and the floor.

    python -m benchmarks.full_resolution                        # 12 and 24 MP, default options
    python -m benchmarks.full_resolution --sizes 0.4 12 24 --before /tmp/before/function
    python -m benchmarks.full_resolution --stroke-scales 1 0.5 0.25 --iters 3
    python -m benchmarks.full_resolution --sheet docs/full_resolution.jpg --photo PHOTO.png

Each photo is a generated JPEG with an EXIF rotation (devtools.images.make_phone_jpeg), sent as
a raw body like `curl --data-binary`; the answer must be the photo's own upright size. Per case
it prints the client's wall time, the server's own decode / infer / encode split
(Server-Timing), the size the network painted at (X-Painted-Size), the worker's peak resident
memory during the request (VmHWM, reset before each request through /proc/PID/clear_refs) next
to its resident memory before it, and the floor: what any server must pay for that photo,
measured in this process in the same run (Pillow decoding the same JPEG and turning it upright,
encoding the answer as JPEG quality 90, and one run of the same network at the painted size,
with the server's session options), and the wall time as a multiple of it.

`--before DIR` serves another version's function/ folder beside this one (e.g. main's:
`git archive main function | tar -x -C /tmp/before`) and sends every request to both in turn,
so both are measured under the same load: the machine's other work moves absolute numbers,
so compare rows of one run.

`--sheet` writes the comparison that chose the upsampling instead: 100 % crops of a photo whose
painting was made at a quarter of its size (as a 12 MP photo's is at stroke_scale 1), brought
back by Lanczos alone, by the numpy guided upsampling served before the graphs, by the graphs
the function serves, and painted at full size.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from PIL import Image, ImageDraw, ImageOps

from devtools.images import make_phone_jpeg
from devtools.server import FunctionServer
from export.upsample_parity import upsampler
from export.upsample_reference import guided_upsample
from stylefn.imaging.full_resolution import render
from stylefn.imaging.upsample import Finish, Upsampler
from stylefn.styles.registry import available_cpus, session_options

ROOT = Path(__file__).resolve().parents[1]

# megapixels -> stored (w, h); upright is (h, w). 0.4 is a 768x512 photo (painted at its size).
SIZES = {0.4: (768, 512), 12: (4032, 3024), 24: (6000, 4000)}


def _kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else 0


def _server_timing(header: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([\d.]+)", header)}


def floor_s(body: bytes, painted: tuple[int, int], network: ort.InferenceSession) -> float:
    """Seconds any server pays for this JPEG: decode and turn upright, one network run at the
    painted (w, h), encode the full-size answer."""
    t0 = time.perf_counter()
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(body)))
    rgb = np.asarray(img.convert("RGB"))
    t1 = time.perf_counter()
    small = np.zeros((painted[1], painted[0], 3), np.uint8)  # a convolution's time is its size's
    network.run(["stylized"], {"image": small[None]})
    t2 = time.perf_counter()
    Image.fromarray(rgb).save(io.BytesIO(), "JPEG", quality=90)
    return (t1 - t0) + (t2 - t1) + (time.perf_counter() - t2)


class _Target:
    """One server under test, and the numbers gathered from it."""

    def __init__(self, name: str, server: FunctionServer):
        self.name, self.server = name, server
        (self.worker,) = server.worker_pids()
        self.walls: list[float] = []
        self.timings: list[dict[str, float]] = []
        self.peaks: list[int] = []
        self.before = 0
        self.painted = "?"

    def send(self, url_path: str, body: bytes, expect: tuple[int, int], timed: bool) -> None:
        self.before = _kib(self.worker, "VmRSS")
        Path(f"/proc/{self.worker}/clear_refs").write_text("5")  # resets VmHWM
        t0 = time.perf_counter()
        r = requests.post(self.server.url + url_path, data=body,
                          headers={"Content-Type": "image/jpeg"}, timeout=300)  # fmt: skip
        wall = time.perf_counter() - t0
        if r.status_code != 200:
            raise SystemExit(f"{self.name}: HTTP {r.status_code} {r.text[:300]}")
        size = Image.open(io.BytesIO(r.content)).size
        if size != expect:
            raise SystemExit(f"{self.name}: answered {size}, expected {expect}")
        self.painted = r.headers.get("X-Painted-Size", "?")
        if timed:
            self.walls.append(wall)
            self.timings.append(_server_timing(r.headers["Server-Timing"]))
            self.peaks.append(_kib(self.worker, "VmHWM"))

    def row(self, photo: str, scale: float, floor: float) -> dict:
        wall = statistics.median(self.walls)
        split = {
            k: statistics.median(t[k] for t in self.timings) / 1e3
            for k in ("decode", "infer", "encode")
        }
        row = {"photo": photo, "server": self.name, "stroke_scale": scale, "painted": self.painted,
               "wall_s": wall, **split, "floor_s": floor, "ratio": wall / floor,
               "rss_before_mib": self.before / 1024, "peak_mib": max(self.peaks) / 1024}  # fmt: skip
        self.walls, self.timings, self.peaks = [], [], []
        return row


def run_cases(args: argparse.Namespace) -> list[dict]:
    env = {"DEFAULT_ARCH": args.arch}
    network = ort.InferenceSession(
        str(args.model_dir / f"{args.style}.{args.arch}.onnx"),
        session_options(available_cpus()),
        providers=["CPUExecutionProvider"],
    )
    servers = [("after", FunctionServer(args.model_dir, env))]
    if args.before:
        before_env = {**env, "PYTHONPATH": str(args.before)}
        servers.insert(0, ("before", FunctionServer(args.model_dir, before_env,
                                                    source=args.before / "main.py")))  # fmt: skip
    rows = []
    for _, server in servers:
        server.__enter__()
    try:
        targets = [_Target(name, server) for name, server in servers]
        for mp in args.sizes:
            w, h = SIZES[mp]
            body = make_phone_jpeg(w, h, orientation=6)
            for scale in args.stroke_scales:
                path = f"/?style={args.style}&stroke_scale={scale}"
                floors = []
                for i in range(args.iters + 1):  # the first is a warm-up (sessions, arenas)
                    for target in targets:  # in turn, so both see the same load
                        target.send(path, body, (h, w), timed=i > 0)
                    painted = tuple(int(v) for v in targets[-1].painted.split("x"))
                    if i:
                        floors.append(floor_s(body, painted, network))  # type: ignore[arg-type]
                photo = f"{h}x{w} ({mp:g} MP)"
                rows += [t.row(photo, scale, statistics.median(floors)) for t in targets]
                print(".", end="", flush=True, file=sys.stderr)
    finally:
        for _, server in servers:
            server.__exit__(None, None, None)
    print(file=sys.stderr)
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'photo':<22}{'server':>7}{'stroke':>7}{'painted':>11}{'wall s':>8}{'decode':>8}"
        f"{'infer':>7}{'encode':>8}{'floor s':>9}{'x floor':>8}{'RSS before':>12}{'peak MiB':>10}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['photo']:<22}{r['server']:>7}{r['stroke_scale']:>7g}{r['painted']:>11}"
            f"{r['wall_s']:>8.2f}{r['decode']:>8.2f}{r['infer']:>7.2f}{r['encode']:>8.2f}"
            f"{r['floor_s']:>9.2f}{r['ratio']:>8.2f}{r['rss_before_mib']:>12.0f}{r['peak_mib']:>10.0f}"
        )
    load = "/".join(f"{v:.1f}" for v in os.getloadavg())
    lines.append(f"load average at the end (1/5/15 min): {load} on {available_cpus()} CPUs")
    return "\n".join(lines)


def write_sheet(out: Path, photo_path: Path, model: Path, crop: int = 256) -> None:
    """Two rows of 100 % crops. Upsampling: photo | Lanczos | numpy guided (served before) |
    graphs (served now) | painted at full size, for a painting made at a quarter of the photo's
    size, as a 4032 px photo's is at 1024. Stroke scale: the function's result for a 3072 px
    photo (the same photo enlarged, so it is soft) at stroke_scale 0.5, 1 and 2, beside the
    whole result at 1."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    graphs = upsampler(*Upsampler.paths())

    def upsample(photo: np.ndarray, painted: np.ndarray, small: np.ndarray) -> np.ndarray:
        return graphs(photo, painted, small, Finish())

    def paint(rgb: np.ndarray) -> np.ndarray:
        return session.run(["stylized"], {"image": rgb[None]})[0][0]

    photo = np.asarray(Image.open(photo_path).convert("RGB"))
    h, w = photo.shape[:2]
    small = np.asarray(Image.fromarray(photo).resize((w // 4, h // 4), Image.Resampling.LANCZOS))
    painted = paint(small)
    rows = [
        {
            "photo": photo,
            "Lanczos x4": np.asarray(
                Image.fromarray(painted).resize((w, h), Image.Resampling.LANCZOS)
            ),
            "numpy x4 (before)": guided_upsample(painted, small, photo),
            "graphs x4 (served)": upsample(photo, painted, small),
            "painted at full size": paint(photo),
        }
    ]
    big = np.asarray(Image.fromarray(photo).resize((w * 4, h * 4), Image.Resampling.LANCZOS))
    scaled = {
        f"stroke_scale {k:g}": render(big, paint, upsample, stroke_scale=k, max_paint_pixels=10**9)[
            0
        ]
        for k in (0.5, 1.0, 2.0)
    }
    whole = np.asarray(Image.fromarray(scaled["stroke_scale 1"]).resize((crop * w // h, crop)))
    rows.append({**scaled, "stroke_scale 1, whole": whole})
    label = 18

    def crop_width(image: np.ndarray) -> int:  # the whole-picture view is kept whole
        return image.shape[1] if image.shape[1] < 2 * crop else crop

    width = max(sum(crop_width(v) for v in r.values()) for r in rows)
    sheet = Image.new("RGB", (width, len(rows) * (crop + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        x = 0
        for name, image in row.items():
            ih, iw = image.shape[:2]
            cw = crop_width(image)
            y0, x0 = (ih - crop) // 2, (iw - cw) // 2
            top = r * (crop + label)
            sheet.paste(Image.fromarray(image[y0 : y0 + crop, x0 : x0 + cw]), (x, top + label))
            draw.text((x + 4, top + 3), name, fill="black")
            x += cw
    sheet.save(out, quality=88)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "function" / "models")
    p.add_argument("--arch", default="fast")
    p.add_argument("--sizes", type=float, nargs="+", default=[12, 24], choices=sorted(SIZES))
    p.add_argument("--before", type=Path, help="another version's function/ folder, served beside")
    p.add_argument("--stroke-scales", type=float, nargs="+", default=[1.0])
    p.add_argument("--iters", type=int, default=2, help="timed requests per case, after a warm-up")
    p.add_argument("--sheet", type=Path, help="write the upsampling comparison here instead")
    p.add_argument("--photo", type=Path, help="the photo for --sheet")
    p.add_argument("--style", default="starry_night", help="the style painted")
    args = p.parse_args(argv)
    if args.sheet:
        if not args.photo:
            p.error("--sheet needs --photo")
        write_sheet(args.sheet, args.photo, args.model_dir / f"{args.style}.{args.arch}.onnx")
        return 0
    print(format_table(run_cases(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
