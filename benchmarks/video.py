#!/usr/bin/env python3
"""Video: how much a painted clip flickers, and how fast clips are painted.

    python -m benchmarks.video                                  # both tables, bundled starry_night
    python -m benchmarks.video --tables flicker --scene PHOTO.png --frames 30
    python -m benchmarks.video --tables speed --sizes 480 720 --seconds 2

Flicker: synthetic clips with a known motion (devtools/videos.py): a camera panning 2 px a
frame over a photo, a still camera, and a camera zooming in 1 % a frame, all with sensor noise
(sigma 2 grey levels). The
warped temporal error is the mean absolute difference between each result frame and the
previous one moved by the known motion (0 for a still camera), in grey levels. Rows: the input
itself, every frame painted on its own (what sending the frames as photos gives), then each
of video/painter.py's measures added in turn, and the server's own answer (the MP4 decoded
again, so its compression is counted). Every row paints the same decoded frames.

Speed: frames per second of the whole path (decode, paint, finish, encode H.264 with the
sound) through the app's test client, for a pan at each height (16:9), and the painting alone
on the same frames for comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "function"))

from devtools.videos import (  # noqa: E402
    decode_clip,
    encode_clip,
    pan_frames,
    scene_for,
    warped_error,
    zoom_frames,
)

ZOOM = 0.01  # the zoom clip magnifies 1 % a frame


def client(model_dir: Path) -> Any:
    import functions_framework

    os.environ["MODEL_DIR"] = str(model_dir)
    return functions_framework.create_app(
        "stylize", str(ROOT / "function" / "main.py")
    ).test_client()


def flicker(args: argparse.Namespace) -> None:
    from stylefn.video.painter import BLEND, FramePainter

    app = client(args.models)
    module = sys.modules["main"]
    instance = module.instance()
    choice = instance.registry.get(args.style, "fast")
    w, h, n = args.width, args.height, args.frames
    print(f"\nwarped temporal error, grey levels ({w}x{h}, {n} frames, noise 2, {args.style}):\n")
    print(
        "| clip | input | frames on their own | shared statistics | + grid follows the camera "
        "| + leaning on the previous result | the server's MP4 | MP4 / on their own |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, step in (("pan 2 px/frame", 2), ("still camera", 0), ("zoom 1 %/frame", None)):
        if args.scene:
            scene = np.asarray(Image.open(args.scene).convert("RGB"))
        else:
            scene = scene_for(w, h, n, step or 0)
        if step is None:
            clip = encode_clip(zoom_frames(scene, w, h, n, ZOOM, 2.0), audio=None)
        else:
            clip = encode_clip(pan_frames(scene, w, h, n, step, 2.0), audio=None)
        frames = decode_clip(clip).frames  # what the server decodes
        paint = lambda rgb, stats: instance.paint_with(choice, rgb, stats)  # noqa: E731
        alone = [instance.stylize(choice, f) for f in frames]
        rows = [warped_error(frames, step, ZOOM), warped_error(alone, step, ZOOM)]
        for align, blend in ((False, 0.0), (True, 0.0), (True, BLEND)):
            painter = FramePainter(paint, align=align, blend=blend)
            rows.append(warped_error([painter(f) for f in frames], step, ZOOM))
        r = app.post(f"/?style={args.style}&arch=fast", data=clip, content_type="video/mp4")
        assert r.status_code == 200, r.data[:300]
        rows.append(warped_error(decode_clip(r.data).frames, step, ZOOM))
        cells = " | ".join(f"{v:.2f}" for v in rows)
        print(f"| {name} | {cells} | {rows[-1] / rows[1]:.2f}x |")


def speed(args: argparse.Namespace) -> None:
    app = client(args.models)
    instance = sys.modules["main"].instance()
    choice = instance.registry.get(args.style, "fast")
    print(
        f"\nframes per second ({args.seconds} s pans at 25 fps, {args.style} fast, "
        f"{os.cpu_count()} CPUs, {args.iters} runs, median):\n"
    )
    print("| size | frames | whole request s | fps | painting alone fps | MP4 in kB | out kB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for height in args.sizes:
        width = round(height * 16 / 9 / 2) * 2
        n = round(args.seconds * 25)
        clip = encode_clip(
            pan_frames(scene_for(width, height, n, 2), width, height, n, 2, 2.0),
            audio="aac",
            crf=20,
        )
        frames = decode_clip(clip).frames
        walls, paints = [], []
        body = b""
        for _ in range(args.iters):
            t0 = time.perf_counter()
            r = app.post(f"/?style={args.style}&arch=fast", data=clip, content_type="video/mp4")
            walls.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.data[:300]
            body = r.data
            t0 = time.perf_counter()
            for f in frames:
                instance.stylize(choice, f)
            paints.append(time.perf_counter() - t0)
        wall, paint = statistics.median(walls), statistics.median(paints)
        print(
            f"| {width}x{height} | {n} | {wall:.1f} | {n / wall:.1f} | {n / paint:.1f} "
            f"| {len(clip) / 1e3:.0f} | {len(body) / 1e3:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tables", nargs="+", choices=("flicker", "speed"), default=["flicker", "speed"]
    )
    parser.add_argument("--models", type=Path, default=ROOT / "function" / "models")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--scene", help="a photo to pan over (default: a synthetic one)")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[480, 720], help="heights, 16:9")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--iters", type=int, default=1)
    args = parser.parse_args()
    if "flicker" in args.tables:
        flicker(args)
    if "speed" in args.tables:
        speed(args)


if __name__ == "__main__":
    main()
