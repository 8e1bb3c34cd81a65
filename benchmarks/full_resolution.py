#!/usr/bin/env python3
"""Phone-sized photos through a real server on 127.0.0.1: time and worker memory per request.

    python -m benchmarks.full_resolution                        # 12 and 24 MP, default options
    python -m benchmarks.full_resolution --stroke-scales 1 0.5 0.25 --iters 3
    python -m benchmarks.full_resolution --sheet docs/full_resolution.jpg --photo PHOTO.png

Each photo is a generated JPEG with an EXIF rotation (devtools.images.make_phone_jpeg), sent as
a raw body like `curl --data-binary`; the answer must be the photo's own upright size. Per case
it prints the client's wall time, the server's own decode / infer / encode split
(Server-Timing), the size the network painted at (X-Painted-Size) and the worker's peak
resident memory during the request (VmHWM, reset before each request through
/proc/PID/clear_refs) next to its resident memory before it.

`--sheet` writes the comparison that chose the upsampling instead: 100 % crops of a photo whose
painting was made at a quarter of its size (as a 12 MP photo's is at stroke_scale 1), brought
back by Lanczos alone, by the guided upsampling the function uses, and painted at full size.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import requests
from PIL import Image, ImageDraw

from devtools.images import make_phone_jpeg
from devtools.server import FunctionServer
from stylefn.imaging.full_resolution import guided_upsample, render

ROOT = Path(__file__).resolve().parents[1]

SIZES = {12: (4032, 3024), 24: (6000, 4000)}  # megapixels -> stored (w, h); upright is (h, w)


def _kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else 0


def _server_timing(header: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([\d.]+)", header)}


def run_cases(args: argparse.Namespace) -> list[dict]:
    rows = []
    with FunctionServer(args.model_dir, {"DEFAULT_ARCH": args.arch}) as server:
        (worker,) = server.worker_pids()
        for mp in args.sizes:
            w, h = SIZES[mp]
            body = make_phone_jpeg(w, h, orientation=6)
            for scale in args.stroke_scales:
                url = f"{server.url}/?stroke_scale={scale}"
                walls, timings, peaks, before = [], [], [], 0
                for i in range(args.iters + 1):  # the first is a warm-up (session, arenas)
                    before = _kib(worker, "VmRSS")
                    Path(f"/proc/{worker}/clear_refs").write_text("5")  # resets VmHWM
                    t0 = time.perf_counter()
                    r = requests.post(url, data=body, headers={"Content-Type": "image/jpeg"},
                                      timeout=300)  # fmt: skip
                    wall = time.perf_counter() - t0
                    if r.status_code != 200:
                        raise SystemExit(f"{mp} MP: HTTP {r.status_code} {r.text[:300]}")
                    if i:
                        walls.append(wall)
                        timings.append(_server_timing(r.headers["Server-Timing"]))
                        peaks.append(_kib(worker, "VmHWM"))
                size = Image.open(io.BytesIO(r.content)).size
                if size != (h, w):
                    raise SystemExit(f"{mp} MP: answered {size}, expected {(h, w)}")
                rows.append(
                    {
                        "photo": f"{h}x{w} ({mp} MP)",
                        "stroke_scale": scale,
                        "painted": r.headers.get("X-Painted-Size", "?"),
                        "wall_s": statistics.median(walls),
                        **{
                            k: statistics.median(t[k] for t in timings) / 1e3
                            for k in ("decode", "infer", "encode")
                        },
                        "rss_before_mib": before / 1024,
                        "peak_mib": max(peaks) / 1024,
                    }
                )
                print(".", end="", flush=True, file=sys.stderr)
        rows_after = _kib(worker, "VmRSS") / 1024
    print(file=sys.stderr)
    print(f"worker RSS after the run: {rows_after:.0f} MiB")
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'photo':<22}{'stroke':>7}{'painted':>11}{'wall s':>8}{'decode':>8}{'infer':>7}"
        f"{'encode':>8}{'RSS before':>12}{'peak MiB':>10}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['photo']:<22}{r['stroke_scale']:>7g}{r['painted']:>11}{r['wall_s']:>8.2f}"
            f"{r['decode']:>8.2f}{r['infer']:>7.2f}{r['encode']:>8.2f}"
            f"{r['rss_before_mib']:>12.0f}{r['peak_mib']:>10.0f}"
        )
    return "\n".join(lines)


def write_sheet(out: Path, photo_path: Path, model: Path, crop: int = 256) -> None:
    """Two rows of 100 % crops. Upsampling: photo | Lanczos | guided (what the function does) |
    painted at full size, for a painting made at a quarter of the photo's size, as a 4032 px
    photo's is at 1024. Stroke scale: the function's result for a 3072 px photo (the same photo
    enlarged, so it is soft) at stroke_scale 0.5, 1 and 2, beside the whole result at 1."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

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
            "guided x4 (served)": guided_upsample(painted, small, photo),
            "painted at full size": paint(photo),
        }
    ]
    big = np.asarray(Image.fromarray(photo).resize((w * 4, h * 4), Image.Resampling.LANCZOS))
    scaled = {
        f"stroke_scale {k:g}": render(
            big, paint, stroke_scale=k, max_paint_pixels=10**9, finish=lambda _p, x: x
        )[0]
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
    p.add_argument("--sizes", type=int, nargs="+", default=[12, 24], choices=sorted(SIZES))
    p.add_argument("--stroke-scales", type=float, nargs="+", default=[1.0])
    p.add_argument("--iters", type=int, default=2, help="timed requests per case, after a warm-up")
    p.add_argument("--sheet", type=Path, help="write the upsampling comparison here instead")
    p.add_argument("--photo", type=Path, help="the photo for --sheet")
    p.add_argument("--style", default="starry_night", help="the style for --sheet")
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
