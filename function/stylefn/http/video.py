"""POST / (or /stylize) with a video: its options checked, the clip admitted by the pixels of a
few frames, then streamed through (video/transcode.py) with each frame painted as a photo is
(at the size its strokes ask for, brought to full size, finished), but so that consecutive
frames agree (video/painter.py). The answer is an MP4, or JSON holding it."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any

import numpy as np

from stylefn.http.context import Context
from stylefn.http.errors import invalid_parameter
from stylefn.http.options import Options, parse_options
from stylefn.http.stylized import Painter, StylizedVideo
from stylefn.http.upload import Upload
from stylefn.imaging.full_resolution import paint_size, render
from stylefn.imaging.upsample import Finish
from stylefn.ops import deadlines
from stylefn.video.painter import FramePainter
from stylefn.video.probe import ClipInfo
from stylefn.video.transcode import stylize_clip

# Frames a request holds at once, for admission: the decoded frame, its painting, the encoder's
# and the decoder's queues (a few more at the frame's size, as YUV).
FRAMES_HELD = 4


def video_options(fields: dict[str, Any], max_image_side: int) -> Options:
    """The photo's options, but the answer is always MP4: `format` may only say so, and
    `quality` (a JPEG's) does not apply."""
    fields = dict(fields)
    fmt = fields.pop("format", "mp4")
    if not isinstance(fmt, str) or fmt.strip().lower() not in ("mp4", ""):
        raise invalid_parameter(
            f"format must be mp4 for a video (it comes back as H.264 MP4); got {str(fmt)[:40]!r}."
        )
    if "quality" in fields:
        raise invalid_parameter("quality applies to photos; leave it out for a video.")
    return parse_options(fields, max_image_side=max_image_side)


def stylize_video(ctx: Context, upload: Upload) -> StylizedVideo:
    config = ctx.config
    t0 = time.perf_counter()
    opts = video_options(upload.fields, config.max_image_side)
    current = ctx.instance()
    choice = current.registry.get(opts.style, opts.arch)
    finish = Finish(opts.strength, opts.preserve_color)
    painter = FramePainter(lambda rgb, stats: current.paint_with(choice, rgb, stats))
    max_paint = current.registry.max_paint_pixels(choice.model)

    def paint(frame: np.ndarray) -> np.ndarray:
        out, _ = render(
            frame,
            painter,
            lambda photo, painted, small: current.upsample(photo, painted, small, finish),
            stroke_scale=opts.stroke_scale,
            max_paint_pixels=max_paint,
        )
        return out

    with ExitStack() as stack:
        stack.enter_context(
            deadlines.limit(
                config.video_deadline_s,
                decode_seconds=config.video_deadline_s,
                setting="VIDEO_DEADLINE_S",
                advice="Send a shorter clip or a lower max_size",
            )
        )

        def admit(info: ClipInfo, size: tuple[int, int]) -> None:
            stack.enter_context(current.admission.admit(FRAMES_HELD * size[0] * size[1]))

        done = stylize_clip(
            upload.data, config.video, max_side=opts.max_size, paint=paint, admit=admit
        )
    timings = {"infer": (time.perf_counter() - t0) * 1e3}
    painted = paint_size(done.width, done.height, opts.stroke_scale, max_paint)  # as render's
    return StylizedVideo(
        done.body, "mp4", upload.as_json, Painter.of(choice), done.width, done.height, painted,
        len(upload.data), f"{done.source.codec} in {done.source.demuxer}", timings,
        done.frames, done.rate, done.audio,
    )  # fmt: skip
