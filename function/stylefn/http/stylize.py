"""POST / (or /stylize): the photo read, its options checked, the work admitted, then decoded,
painted at the size its strokes ask for, brought to full size, finished and encoded. A video
goes to http/video.py."""

from __future__ import annotations

import time

import flask

from stylefn.http.context import Context
from stylefn.http.options import parse_options
from stylefn.http.stylized import Stylized
from stylefn.http.upload import read_upload
from stylefn.http.video import stylize_video
from stylefn.imaging.decode import decode_image, probe_pixels
from stylefn.imaging.encode import check_encodable, encode_image
from stylefn.imaging.full_resolution import render
from stylefn.imaging.upsample import Finish


def stylize(ctx: Context, request: flask.Request) -> Stylized:
    config = ctx.config
    t0 = time.perf_counter()
    upload = read_upload(request, config.max_request_bytes)
    if upload.kind == "video":
        return stylize_video(ctx, upload)
    opts = parse_options(upload.fields, max_image_side=config.max_image_side)
    current = ctx.instance()
    choice = current.registry.get(opts.style, opts.arch)
    # A bounded number of requests past this point (MAX_QUEUED_REQUESTS beyond the running
    # ones), and of their pixels (MAX_INFLIGHT_PIXELS), so a burst cannot hold unbounded
    # decoded images; the rest wait a bounded time or get 503.
    with current.admission.admit(probe_pixels(upload.data, max_pixels=config.max_pixels)):
        decoded = decode_image(
            upload.data,
            max_pixels=config.max_pixels,
            max_side=opts.max_size or config.max_image_side,
        )
        check_encodable(decoded.rgb.shape[1], decoded.rgb.shape[0], opts.format)
        t1 = time.perf_counter()
        finish = Finish(opts.strength, opts.preserve_color)
        out, paint_size = render(
            decoded.rgb,
            lambda rgb: current.stylize(choice, rgb),
            lambda photo, painted, small: current.upsample(photo, painted, small, finish),
            stroke_scale=opts.stroke_scale,
            max_paint_pixels=current.registry.max_paint_pixels(choice.model),
        )
        t2 = time.perf_counter()
        body = encode_image(out, decoded.alpha, opts.format, opts.quality)
    t3 = time.perf_counter()
    h, w = decoded.rgb.shape[:2]
    timings = {"decode": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "encode": (t3 - t2) * 1e3}
    return Stylized(
        body, opts.format, upload.as_json, choice, w, h, paint_size, len(upload.data),
        decoded.source_format, timings,
    )  # fmt: skip
