"""Instance configuration from environment variables, validated once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stylefn.contract import ARCHS

# function/, as the containers copy it to /app: the bundled models/ and the page's static/.
FUNCTION_DIR = Path(__file__).resolve().parents[2]


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise SystemExit(f"{name}={value}: must be at least {minimum}")
    return value


def _choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = os.environ.get(name, "").strip().lower()
    if raw and raw not in choices:
        raise SystemExit(f"{name}={raw!r}: expected one of {', '.join(choices)} (or unset)")
    return raw or None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class VideoLimits:
    """What a video may hold, checked from its header before decoding (video/probe.py) and
    counted again while decoding."""

    max_seconds: float
    max_frames: int
    max_frame_pixels: int  # of a frame as sent
    max_total_pixels: int  # frames x the pixels of each result frame
    max_streams: int


@dataclass(frozen=True)
class Config:
    model_dir: Path
    default_style: str | None
    default_arch: str | None  # None: fast on the CPU provider, johnson on CUDA
    max_request_bytes: int
    max_pixels: int
    max_image_side: int
    require_gpu: bool
    cors_origins: tuple[str, ...]  # empty: CORS off
    max_concurrent_runs: int | None  # None: 1 on CPU, 2 on GPU
    queue_timeout_s: int
    max_queued_requests: int  # admitted beyond the running ones; more get 503 at once
    max_inflight_pixels: int | None  # decoded pixels among admitted requests; None: from memory
    request_deadline_s: int  # a stylize request's work is abandoned after this (503)
    decode_deadline_s: int  # and its decode alone after this
    header_timeout_s: int  # the request line and headers must arrive within this (else 408)
    body_timeout_s: int  # and the body within this after them
    max_buffered_bytes: int  # request bytes the server holds in memory at once (else 503)
    video: VideoLimits
    video_deadline_s: int  # a video request's work is abandoned after this (503)
    style_image_cache: int  # analysed style images kept per process (0: none)

    @classmethod
    def from_env(cls) -> Config:
        origins = os.environ.get("CORS_ORIGINS", "")
        return cls(
            model_dir=Path(os.environ.get("MODEL_DIR") or FUNCTION_DIR / "models"),
            default_style=os.environ.get("DEFAULT_STYLE") or None,
            default_arch=_choice("DEFAULT_ARCH", ARCHS),
            max_request_bytes=_int("MAX_REQUEST_BYTES", 20 * 1024 * 1024),
            max_pixels=_int("MAX_PIXELS", 40_000_000),
            # No side limit of its own by default (JPEG's is 65,535): MAX_PIXELS bounds the work.
            max_image_side=_int("MAX_IMAGE_SIDE", 65_000),
            require_gpu=_flag("REQUIRE_GPU"),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            max_concurrent_runs=_int("MAX_CONCURRENT_RUNS", 0, minimum=0) or None,
            queue_timeout_s=_int("QUEUE_TIMEOUT_S", 30),
            max_queued_requests=_int("MAX_QUEUED_REQUESTS", 16, minimum=0),
            max_inflight_pixels=_int("MAX_INFLIGHT_PIXELS", 0, minimum=0) or None,
            request_deadline_s=_int("REQUEST_DEADLINE_S", 60),
            decode_deadline_s=_int("DECODE_DEADLINE_S", 6),
            header_timeout_s=_int("HEADER_TIMEOUT_S", 10),
            body_timeout_s=_int("BODY_TIMEOUT_S", 60),
            max_buffered_bytes=_int("MAX_BUFFERED_BYTES", 256 * 1024 * 1024),
            video=VideoLimits(
                max_seconds=_int("MAX_VIDEO_SECONDS", 30),
                max_frames=_int("MAX_VIDEO_FRAMES", 1800),  # 30 s at 60 fps
                max_frame_pixels=_int("MAX_VIDEO_FRAME_PIXELS", 1920 * 1080),
                # ~24 s of 480p at 30 fps: about a minute of painting on 2 CPU cores
                max_total_pixels=_int("MAX_VIDEO_PIXELS", 300_000_000),
                max_streams=_int("MAX_VIDEO_STREAMS", 8),  # phones add metadata tracks
            ),
            # Under Cloud Run's request timeout (300 s as infra/deploy.sh sets it).
            video_deadline_s=_int("VIDEO_DEADLINE_S", 240),
            # ~0.35 MB of statistics each
            style_image_cache=_int("STYLE_IMAGE_CACHE", 64, minimum=0),
        )
