"""Synthetic clips with a known motion, for tests and benchmarks: a camera panning over a photo
(or holding still) with sensor noise, and a tone as the sound track, encoded with PyAV."""

from __future__ import annotations

import io
import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np
from PIL import Image

from devtools.images import make_photo


def pan_frames(
    scene: np.ndarray, width: int, height: int, frames: int, step: int, noise: float, seed: int = 0
) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames of a camera moving `step` px right per frame over `scene`
    (H', W', 3), each with Gaussian noise of `noise` grey levels: frame t's pixel (y, x) is the
    scene's (y, x + step * t)."""
    rng = np.random.default_rng(seed)
    if scene.shape[1] < width + step * (frames - 1) or scene.shape[0] < height:
        raise ValueError("the scene is too small for that pan")
    for t in range(frames):
        view = scene[:height, step * t : step * t + width].astype(np.float32)
        yield np.clip(np.rint(view + rng.normal(0, noise, view.shape)), 0, 255).astype(np.uint8)


def zoom_frames(
    scene: np.ndarray,
    width: int,
    height: int,
    frames: int,
    rate: float,
    noise: float,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Frames of a camera zooming into the middle of `scene` by `rate` a frame (0.01: 1 %),
    noisy like pan_frames: frame t shows the scene magnified (1 + rate) ** t."""
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(scene)
    cx, cy = scene.shape[1] / 2, scene.shape[0] / 2
    for t in range(frames):
        s = (1 + rate) ** t
        box = (cx - width / 2 / s, cy - height / 2 / s, cx + width / 2 / s, cy + height / 2 / s)
        view = np.asarray(picture.resize((width, height), Image.Resampling.BICUBIC, box=box))
        noisy = view.astype(np.float32) + rng.normal(0, noise, view.shape)
        yield np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def zoomed(frame: np.ndarray, rate: float) -> np.ndarray:
    """`frame` magnified by 1 + rate about its middle: the next frame of a zoom_frames clip."""
    h, w = frame.shape[:2]
    s = 1 + rate
    box = (w / 2 - w / 2 / s, h / 2 - h / 2 / s, w / 2 + w / 2 / s, h / 2 + h / 2 / s)
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BICUBIC, box=box))


def warped_error(frames: list[np.ndarray], step: int | None, zoom: float = 0.01) -> float:
    """The warped temporal error, grey levels: the mean absolute difference between each frame
    and the previous one moved by the clip's known motion, a pan by `step` px (0: a still
    camera) or, with `step` None, a zoom_frames clip's `zoom` (compared inside an 8 px margin,
    past the edges the zoom brings in)."""
    errors = []
    for a, b in itertools.pairwise(frames):
        if step is None:
            m = 8
            moved = zoomed(a, zoom)[m:-m, m:-m]
            errors.append(np.abs(b[m:-m, m:-m].astype(np.float32) - moved).mean())
        else:
            errors.append(np.abs(b[:, : b.shape[1] - step].astype(np.float32) - a[:, step:]).mean())
    return float(np.mean(errors))


def scene_for(width: int, height: int, frames: int, step: int, seed: int = 0) -> np.ndarray:
    """A synthetic photo wide enough for the pan."""
    return np.asarray(make_photo(width + step * (frames - 1), height, seed=seed))


def encode_clip(
    frames: Iterator[np.ndarray] | list[np.ndarray],
    fps: int = 25,
    *,
    container: str = "mp4",
    codec: str = "libx264",
    audio: str | None = "aac",
    crf: int = 12,
    rotation: int = 0,
    faststart: bool = False,
) -> bytes:
    """The frames as a clip, with a 440 Hz tone as long as the video when `audio` names a
    codec. crf 12 keeps the compression noise well under the sensor noise. `rotation` sets the
    display matrix as phones do (their pixels stored sideways); `faststart` puts an MP4's
    index first (FFmpeg rewrites the file for it, so it goes through a temporary file)."""
    with tempfile.NamedTemporaryFile(suffix="." + container) as file:
        options = {"movflags": "+faststart"} if faststart else {}
        with av.open(file.name, "w", format=container, options=options) as out:
            _write(out, frames, fps, codec, audio, crf, rotation)
        return file.read()


def _write(
    out: av.container.OutputContainer,
    frames: Iterator[np.ndarray] | list[np.ndarray],
    fps: int,
    codec: str,
    audio: str | None,
    crf: int,
    rotation: int,
) -> None:
    video = cast(av.VideoStream, out.add_stream(codec, rate=fps))
    video.pix_fmt = "yuv420p"
    if codec == "libx264":
        video.options = {"crf": str(crf), "preset": "veryfast"}
    sound = None
    if audio:
        sound = cast(av.AudioStream, out.add_stream(audio, rate=48000))
        sound.layout = "stereo"
    count = 0
    for count, rgb in enumerate(frames, 1):
        if count == 1:
            video.height, video.width = rgb.shape[:2]
            if rotation:
                video.set_display_rotation(rotation)
        out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    out.mux(video.encode())
    if sound is not None:
        write_tone(out, sound, seconds=Fraction(count, fps))


def write_tone(out: av.container.OutputContainer, sound: av.AudioStream, seconds: Fraction) -> None:
    rate, chunk = sound.rate, 1024
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        t = np.arange(start, min(total, start + chunk)) / rate
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.rate, frame.pts = rate, start
        out.mux(sound.encode(frame))
    out.mux(sound.encode())


def pan_clip(
    width: int = 320,
    height: int = 240,
    frames: int = 20,
    step: int = 2,
    noise: float = 2.0,
    fps: int = 25,
    **kw: object,
) -> bytes:
    """A synthetic pan, encoded (encode_clip's options in `kw`)."""
    scene = scene_for(width, height, frames, step)
    return encode_clip(pan_frames(scene, width, height, frames, step, noise), fps, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Clip:
    """A decoded clip: every frame as RGB, and what its header says."""

    frames: list[np.ndarray]
    rate: Fraction | None  # average frames per second
    codec: str
    pix_fmt: str | None
    audio: list[tuple[str, float]]  # (codec, seconds) of each sound track


def decode_clip(data: bytes) -> Clip:
    with av.open(io.BytesIO(data), "r") as clip:
        video = clip.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in clip.decode(video)]
        audio = [
            (a.codec_context.codec.canonical_name, float((a.duration or 0) * (a.time_base or 0)))
            for a in clip.streams.audio
        ]
        codec = video.codec_context.codec.canonical_name  # "mp3", not its decoder "mp3float"
        return Clip(frames, video.average_rate, codec, video.codec_context.pix_fmt, audio)


def still_image(rgb: np.ndarray) -> bytes:
    """A frame as a PNG, to send as a photo."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()
