"""POST / (or /stylize): the photo read, its options checked, the work admitted, then decoded,
painted at the size its strokes ask for, brought to full size, finished and encoded. A video
goes to http/video.py, a photo with its own painting to http/style_image.py."""

from __future__ import annotations

import time

import flask
import numpy as np

from stylefn.http import style_image
from stylefn.http.context import Context
from stylefn.http.errors import invalid_parameter
from stylefn.http.options import Options, parse_options
from stylefn.http.stylized import Painter, Stylized
from stylefn.http.upload import read_upload
from stylefn.http.video import stylize_video
from stylefn.imaging.decode import decode_image, probe_pixels
from stylefn.imaging.encode import check_encodable, encode_image
from stylefn.imaging.full_resolution import render
from stylefn.imaging.upsample import Finish
from stylefn.instance import Instance
from stylefn.styles.mix import Choice


def stylize(ctx: Context, request: flask.Request) -> Stylized:
    config = ctx.config
    t0 = time.perf_counter()
    upload = read_upload(request, config.max_request_bytes)
    own = upload.style_image
    if upload.kind == "video":
        if own is not None:
            raise invalid_parameter("style_image works with photos; send a video with a style.")
        return stylize_video(ctx, upload)
    opts = parse_options(upload.fields, max_image_side=config.max_image_side)
    current = ctx.instance()
    pixels = probe_pixels(upload.data, max_pixels=config.max_pixels)
    if own is None:
        choice = current.registry.get(opts.style, opts.arch)
    else:
        style_image.check_options(opts)
        # Refused now if it would be refused later, and weighed with the photo.
        pixels += style_image.probe_painting(own, max_pixels=config.max_pixels)
    # A bounded number of requests past this point (MAX_QUEUED_REQUESTS beyond the running
    # ones), and of their pixels (MAX_INFLIGHT_PIXELS), so a burst cannot hold unbounded
    # decoded images; the rest wait a bounded time or get 503.
    with current.admission.admit(pixels):
        decoded = decode_image(
            upload.data,
            max_pixels=config.max_pixels,
            max_side=opts.max_size or config.max_image_side,
        )
        check_encodable(decoded.rgb.shape[1], decoded.rgb.shape[0], opts.format)
        t1 = time.perf_counter()
        if own is None:
            painter, out, paint_size = paint_named(current, choice, decoded.rgb, opts)
        else:
            painter, out, paint_size = style_image.paint_like_image(
                current, own, decoded.rgb, opts, config.max_pixels
            )
        t2 = time.perf_counter()
        body = encode_image(out, decoded.alpha, opts.format, opts.quality)
    t3 = time.perf_counter()
    h, w = decoded.rgb.shape[:2]
    timings = {"decode": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "encode": (t3 - t2) * 1e3}
    return Stylized(
        body, opts.format, upload.as_json, painter, w, h, paint_size, len(upload.data),
        decoded.source_format, timings,
    )  # fmt: skip


def paint_named(
    current: Instance, choice: Choice, photo: np.ndarray, opts: Options
) -> tuple[Painter, np.ndarray, tuple[int, int]]:
    finish = Finish(opts.strength, opts.preserve_color)
    out, size = render(
        photo,
        lambda rgb: current.stylize(choice, rgb),
        lambda full, painted, small: current.upsample(full, painted, small, finish),
        stroke_scale=opts.stroke_scale,
        max_paint_pixels=current.registry.max_paint_pixels(choice.model),
    )
    return Painter.of(choice), out, size
