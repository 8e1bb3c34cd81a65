"""A clip's container and streams read from its header, and every limit checked there, before a
frame is decoded: the container and codecs on the allow-list, the stream count, the duration,
the frame count, the pixels of a frame and of the whole clip.

The container is named from the file's first bytes and opened with that demuxer alone: letting
FFmpeg guess among all of its demuxers would let a playlist (HLS, concat) open other files.
Headers can lie; transcode.py counts frames and pixels again as it decodes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction

import av

from stylefn.ops.config import VideoLimits
from stylefn.video.errors import InvalidVideo, UnsupportedVideo, VideoTooLarge

# Demuxer by the file's signature: ISO media (MP4, MOV, 3GP) by the type of its first box,
# Matroska and WebM by their EBML magic.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_EBML = b"\x1a\x45\xdf\xa3"
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
AUDIO_CODECS = frozenset({"aac", "mp3", "opus", "vorbis", "flac", "alac", "pcm_s16le", "pcm_s24le"})
# Bytes FFmpeg may read to find the streams (its defaults are 5 MB and 5 s of media).
PROBE_OPTIONS = {"probesize": str(1 << 20), "analyzeduration": "1000000"}
_SEND = "Send an MP4 (H.264, HEVC, AV1), MOV or WebM (VP8, VP9, AV1) clip."


@dataclass(frozen=True)
class ClipInfo:
    demuxer: str  # "mov" or "matroska"
    codec: str
    width: int  # as stored: a phone's portrait clip is stored sideways (frames say how to turn)
    height: int
    rate: Fraction  # frames per second (average)
    frames: int  # from the header; an estimate from duration x rate where it has no count
    seconds: float
    audio_codec: str | None  # the first audio stream's, carried over


def signature(data: bytes) -> str | None:
    """The demuxer the file's first bytes name, or None when they name no video container."""
    if data[4:8] in _ISO_BOXES:
        return "mov"
    if data.startswith(_EBML):
        return "matroska"
    return None


def demuxer_for(data: bytes) -> str:
    demuxer = signature(data)
    if demuxer is not None:
        return demuxer
    if not data:
        raise InvalidVideo(f"The video is empty. {_SEND}")
    raise InvalidVideo(f"The body is not an MP4, MOV or WebM file. {_SEND}")


def open_clip(data: bytes) -> av.container.InputContainer:
    """The clip's container, opened with the demuxer its signature names."""
    demuxer = demuxer_for(data)
    try:
        return av.open(io.BytesIO(data), "r", format=demuxer, options=PROBE_OPTIONS)
    except av.FFmpegError:
        raise InvalidVideo(
            f"Could not read the video's header: it is truncated or corrupt. {_SEND}"
        ) from None


def probe(container: av.container.InputContainer, limits: VideoLimits) -> ClipInfo:
    """What the header says, checked against `limits` and the allow-lists."""
    streams = container.streams
    if len(streams) > limits.max_streams:
        raise VideoTooLarge(
            f"The file has {len(streams)} streams, over the limit of {limits.max_streams}. "
            "Send a clip with one video track (and at most one sound track)."
        )
    if not streams.video:
        raise InvalidVideo(f"The file has no video track. {_SEND}")
    video = streams.video[0]
    codec = _codec_name(video)
    if codec not in VIDEO_CODECS:
        raise UnsupportedVideo(
            f"Video codec {codec!r} is not supported: use one of "
            f"{', '.join(sorted(VIDEO_CODECS))} (e.g. ffmpeg -i in.mov -c:v libx264 out.mp4)."
        )
    audio = _codec_name(streams.audio[0]) if streams.audio else None
    if audio is not None and audio not in AUDIO_CODECS:
        raise UnsupportedVideo(
            f"Audio codec {audio!r} is not supported: use one of {', '.join(sorted(AUDIO_CODECS))}"
            " (e.g. ffmpeg -i in.mov -c:v copy -c:a aac out.mp4), or remove the sound track."
        )
    width, height = video.codec_context.width, video.codec_context.height
    if width < 1 or height < 1:
        raise InvalidVideo(f"The video track declares no picture size. {_SEND}")
    if width * height > limits.max_frame_pixels:
        raise VideoTooLarge(
            f"The video is {width}x{height} ({width * height:,} pixels a frame), over the limit "
            f"of {limits.max_frame_pixels:,}. Scale it down (e.g. ffmpeg -i in.mp4 -vf "
            "scale=-2:720 out.mp4) and try again."
        )
    rate = Fraction(video.average_rate or video.guessed_rate or 0)
    if not 0 < rate <= 1000:
        raise InvalidVideo(
            f"The video track declares no usable frame rate ({float(rate):g}). {_SEND}"
        )
    seconds = _seconds(container, video)
    frames = video.frames or math.ceil(seconds * rate)
    check_duration(seconds, frames, limits)
    return ClipInfo(
        container.format.name.split(",")[0], codec, width, height, rate,
        frames, seconds, audio,
    )  # fmt: skip


def check_duration(seconds: float, frames: int, limits: VideoLimits) -> None:
    """Raise VideoTooLarge when the clip is longer than the limits allow."""
    if seconds > limits.max_seconds:
        raise VideoTooLarge(
            f"The video is {seconds:.1f} s long, over the limit of {limits.max_seconds:g} s. "
            "Send a shorter clip (e.g. ffmpeg -i in.mp4 -t 10 -c copy out.mp4)."
        )
    if frames > limits.max_frames:
        raise VideoTooLarge(
            f"The video has {frames:,} frames, over the limit of {limits.max_frames:,}. Send a "
            "shorter clip or a lower frame rate (e.g. ffmpeg -i in.mp4 -r 24 out.mp4)."
        )


def check_total(frames: int, width: int, height: int, limits: VideoLimits) -> None:
    """Raise VideoTooLarge when `frames` frames of width x height exceed the clip's budget."""
    if frames * width * height > limits.max_total_pixels:
        raise VideoTooLarge(
            f"{frames:,} frames of {width}x{height} are {frames * width * height / 1e6:,.0f} "
            f"million pixels to paint, over the limit of {limits.max_total_pixels / 1e6:,.0f} "
            "million. Send a shorter clip, or a smaller one (max_size), and try again."
        )


def _codec_name(stream: av.VideoStream | av.AudioStream) -> str:
    """The codec's own name ("av1", "mp3"), not its decoder's ("libdav1d", "mp3float")."""
    codec = stream.codec_context.codec
    return str(getattr(codec, "canonical_name", None) or codec.name)


def _seconds(container: av.container.InputContainer, video: av.VideoStream) -> float:
    if video.duration is not None and video.time_base:
        return float(video.duration * video.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0  # unknown: transcode.py's running count enforces the limits
