"""A clip streamed through: demuxed and decoded one frame at a time, each painted as it comes
and handed to the encoder, the sound carried over, into an MP4 (H.264, yuv420p, moov first so
browsers start playing before the end). Memory holds a few frames, whatever the clip's length.

Frames keep their timestamps, so the result has the clip's frame count, rate and timing, and
stays in sync with the sound. H.264's 4:2:0 needs even sides: an odd one loses its last row or
column. A phone's sideways-stored portrait clip comes back upright.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from stylefn.ops import deadlines
from stylefn.ops.config import VideoLimits
from stylefn.video.errors import InvalidVideo, VideoTooLarge
from stylefn.video.probe import ClipInfo, check_duration, check_total, open_clip, probe

# Copied into the MP4 as they are; other sound (Opus, Vorbis, FLAC, PCM) is re-encoded as AAC.
COPIED_AUDIO = frozenset({"aac", "mp3", "alac"})
# x264: crf 20 is visually close to the painting at a third of crf 14's size; `veryfast`
# encodes 720p at several times the network's frame rate on a CPU.
X264 = {"crf": "20", "preset": "veryfast"}
MEDIA_TYPE = "video/mp4"


@dataclass(frozen=True)
class Transcoded:
    body: bytes
    width: int
    height: int
    frames: int
    rate: Fraction
    audio: bool
    source: ClipInfo


def output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) of the result: within `max_side`, aspect kept, both even (4:2:0), at least 2."""
    scale = min(1.0, (max_side or max(width, height)) / max(width, height))
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    return w - w % 2, h - h % 2


def stylize_clip(
    data: bytes,
    limits: VideoLimits,
    *,
    max_side: int | None,
    paint: Callable[[np.ndarray], np.ndarray],
    admit: Callable[[ClipInfo, tuple[int, int]], None] = lambda info, size: None,
) -> Transcoded:
    """The clip `data` with every frame replaced by paint(frame) ((H, W, 3) uint8 upright,
    the result's size, in order). `admit` sees the header and the result's size before any
    frame is decoded, and may refuse. Raises InvalidVideo, UnsupportedVideo, VideoTooLarge."""
    with open_clip(data) as clip, tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        info = probe(clip, limits)
        video = clip.streams.video[0]
        video.thread_type = "AUTO"
        # FFmpeg's own bound, for a stream whose frames grow past the header's size mid-way
        # (a new sequence header): the decoder refuses them before allocating.
        video.codec_context.options = {"max_pixels": str(limits.max_frame_pixels)}
        sound = clip.streams.audio[0] if clip.streams.audio else None
        with av.open(file.name, "w", format="mp4", options={"movflags": "+faststart"}) as out:
            encoder = Encoder(out, video, sound, info)
            try:
                frames = _paint_frames(
                    clip, video, sound, info, limits, max_side, paint, encoder, admit
                )
            except av.FFmpegError as e:
                raise InvalidVideo(
                    f"The video could not be decoded: it is truncated or corrupt ({e.strerror or e}). "
                    "Send the complete file."
                ) from None
            encoder.finish()
        body = file.read()
    return Transcoded(
        body, encoder.width, encoder.height, frames, info.rate, sound is not None, info
    )


def _paint_frames(
    clip: av.container.InputContainer,
    video: av.VideoStream,
    sound: av.AudioStream | None,
    info: ClipInfo,
    limits: VideoLimits,
    max_side: int | None,
    paint: Callable[[np.ndarray], np.ndarray],
    encoder: Encoder,
    admit: Callable[[ClipInfo, tuple[int, int]], None],
) -> int:
    size = output_size(info.width, info.height, max_side)  # as stored, before any turn
    check_total(info.frames, *size, limits)
    admit(info, size)
    count, seconds = 0, 0.0
    streams = [video] + ([sound] if sound is not None else [])
    for packet in clip.demux(streams):
        if packet.stream.type == "audio":
            encoder.audio(packet)
            continue
        for frame in packet.decode():
            if not isinstance(frame, av.VideoFrame):
                continue
            deadlines.check()
            count += 1
            seconds = float(frame.time or 0.0)
            check_duration(seconds, count, limits)
            check_total(count, *size, limits)
            if frame.width * frame.height > limits.max_frame_pixels:
                raise VideoTooLarge(
                    f"A frame of the video is {frame.width}x{frame.height}, over the limit of "
                    f"{limits.max_frame_pixels:,} pixels. Scale the clip down and try again."
                )
            rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
            # The display matrix turns the stored picture counter-clockwise, as np.rot90 does.
            turn = round((frame.rotation or 0) / 90) % 4
            upright = np.ascontiguousarray(np.rot90(rgb, turn)) if turn else rgb
            encoder.video(paint(upright), frame)
    if count == 0:
        raise InvalidVideo("The video has no frames that could be decoded. Send the complete file.")
    if video.frames and count < video.frames:  # MP4 and MOV list every frame
        raise InvalidVideo(
            f"The video is truncated: {count} of the {video.frames} frames its header lists "
            "could be decoded. Send the complete file."
        )
    if not video.frames and seconds < info.seconds - max(3 / float(info.rate), 0.05 * info.seconds):
        raise InvalidVideo(
            f"The video is truncated: its frames end at {seconds:.2f} s of the {info.seconds:.2f} s "  # WebM
            "its header lists. Send the complete file."
        )
    return count


class Encoder:
    """The output MP4: H.264 video, and the sound copied or re-encoded as AAC."""

    def __init__(
        self,
        out: av.container.OutputContainer,
        video: av.VideoStream,
        sound: av.AudioStream | None,
        info: ClipInfo,
    ):
        self.out = out
        self.stream: av.VideoStream | None = None
        self.width = self.height = 0
        self.time_base = video.time_base or Fraction(1, 90_000)
        self.rate = info.rate
        self.copy = sound is not None and info.audio_codec in COPIED_AUDIO
        self.sound: av.AudioStream | None = None
        if sound is not None:
            if self.copy:
                self.sound = out.add_stream_from_template(sound)
            else:
                self.sound = out.add_stream("aac", rate=sound.rate or 48_000)
                self.sound.layout = sound.layout.name if sound.layout.nb_channels <= 2 else "stereo"
        self._index = 0
        self._early: list[av.Packet] = []  # sound demuxed before the first frame was painted

    def video(self, rgb: np.ndarray, source: av.VideoFrame) -> None:
        if self.stream is None:
            self.height, self.width = rgb.shape[:2]
            self.stream = self.out.add_stream("libx264", rate=self.rate)
            self.stream.width, self.stream.height = self.width, self.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = self.time_base
            self.stream.options = dict(X264)
            for packet in self._early:  # the header is written with the first packet muxed
                self.audio(packet)
            self._early.clear()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        pts = source.pts
        if pts is None:  # no timestamp: place it by its index at the average rate
            pts = math.floor(self._index / self.rate / self.time_base)
        frame.pts, frame.time_base = pts, self.time_base
        self._index += 1
        self.out.mux(self.stream.encode(frame))

    def audio(self, packet: av.Packet) -> None:
        if self.sound is None:
            return
        if self.stream is None:
            self._early.append(packet)
            return
        if self.copy:
            if packet.dts is None or packet.size == 0:  # the demuxer's flush packet
                return
            packet.stream = self.sound
            self.out.mux(packet)
            return
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                frame.pts = None  # the encoder's own clock from the samples it has been given
                self.out.mux(self.sound.encode(frame))

    def finish(self) -> None:
        if self.stream is not None:
            self.out.mux(self.stream.encode())
        if self.sound is not None and not self.copy:
            self.out.mux(self.sound.encode())
