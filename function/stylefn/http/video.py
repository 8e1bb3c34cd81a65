"""POST / (or /stylize) with a video: its options checked, the clip admitted by the pixels of a
few frames, then streamed through (video/transcode.py) with each frame painted as a photo is
(at the size its strokes ask for, brought to full size, finished), but so that consecutive
frames agree (video/painter.py). The answer is an MP4, or JSON holding it."""

from __future__ import annotations

import base64
import time
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import flask
import numpy as np
from PIL import Image

from stylefn.http.context import Context
from stylefn.http.errors import invalid_parameter
from stylefn.http.options import Options, parse_options
from stylefn.http.upload import Upload
from stylefn.imaging.full_resolution import paint_size
from stylefn.imaging.upsample import Finish
from stylefn.ops import deadlines
from stylefn.styles.mix import Choice
from stylefn.video.painter import FramePainter
from stylefn.video.probe import ClipInfo
from stylefn.video.transcode import MEDIA_TYPE, stylize_clip

# Frames a request holds at once, for admission: the decoded frame, its painting, the encoder's
# and the decoder's queues (a few more at the frame's size, as YUV).
FRAMES_HELD = 4


@dataclass(frozen=True)
class StylizedVideo:
    """A stylized clip and what the response and the log line say about it."""

    body: bytes
    as_json: bool
    choice: Choice
    width: int
    height: int
    frames: int
    rate: Fraction
    audio: bool
    paint_size: tuple[int, int]
    input_bytes: int
    source: str  # "h264 in mov", ...
    timings_ms: dict[str, float]  # infer (decode, paint and encode, interleaved)

    @property
    def painted(self) -> str:
        return "{}x{}".format(*self.paint_size)

    def response(self, timings_ms: dict[str, float]) -> flask.Response:
        if self.as_json:
            response = flask.jsonify(
                video=base64.b64encode(self.body).decode("ascii"),
                format="mp4",
                width=self.width,
                height=self.height,
                frames=self.frames,
                fps=float(self.rate),
                audio=self.audio,
                style=self.choice.mix.label,
                arch=self.choice.model.arch,
                timings_ms=timings_ms,
            )
        else:
            response = flask.Response(self.body, mimetype=MEDIA_TYPE)
        response.headers["X-Style-Model"] = self.choice.key
        response.headers["X-Painted-Size"] = self.painted
        response.headers["X-Frames"] = str(self.frames)
        return response

    def log_fields(self) -> dict[str, Any]:
        return {
            "style": self.choice.mix.label,
            "arch": self.choice.model.arch,
            "input_bytes": self.input_bytes,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "painted": self.painted,
            "source_format": self.source,
        }


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
    sizes: list[tuple[int, int]] = []

    def paint(frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        size = paint_size(w, h, opts.stroke_scale, max_paint)
        small = frame if size == (w, h) else np.asarray(
            Image.fromarray(frame).resize(size, Image.Resampling.LANCZOS, reducing_gap=1.5)
        )  # fmt: skip
        if not sizes:
            sizes.append(size)
        return current.upsample(frame, painter(small), small, finish)

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
    return StylizedVideo(
        done.body, upload.as_json, choice, done.width, done.height, done.frames, done.rate,
        done.audio, sizes[0], len(upload.data), f"{done.source.codec} in {done.source.demuxer}",
        timings,
    )  # fmt: skip
