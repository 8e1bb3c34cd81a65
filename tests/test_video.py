"""Video in, video out: real clips encoded with PyAV, sent through the real app and a real server
on 127.0.0.1, decoded again and measured. The flicker test uses the bundled starry_night
network (it is the trained strokes that flicker, not the tiny test models' blur)."""

from __future__ import annotations

import base64
import io
import struct
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import requests

from devtools.server import FunctionServer
from devtools.videos import (
    decode_clip,
    encode_clip,
    pan_clip,
    pan_frames,
    scene_for,
    still_image,
    warped_error,
)
from tests.conftest import decoded

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "function" / "models"


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def bundled_client(make_client):
    return make_client(MODEL_DIR=str(BUNDLED))


def send(client, clip: bytes, content_type: str = "video/mp4", query: str = ""):
    return client.post("/" + query, data=clip, content_type=content_type)


def assert_error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.data[:300]
    error = r.get_json()["error"]
    assert error["code"] == code
    return error["message"]


# --- what comes back ----------------------------------------------------------------------------


def test_a_clip_comes_back_with_its_frames_size_rate_and_sound(client):
    clip = pan_clip(160, 120, frames=15, fps=24)
    r = send(client, clip, query="?style=stripes&arch=fast")
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "video/mp4"
    assert r.headers["X-Frames"] == "15"
    out, source = decode_clip(r.data), decode_clip(clip)
    assert len(out.frames) == 15 and out.frames[0].shape == (120, 160, 3)
    assert out.rate == 24
    assert (out.codec, out.pix_fmt) == ("h264", "yuv420p")
    assert [codec for codec, _ in out.audio] == ["aac"]
    assert out.audio[0][1] == pytest.approx(source.audio[0][1], abs=0.05)
    assert all(f.std() > 1 for f in out.frames)
    assert np.abs(out.frames[0].astype(int) - source.frames[0]).mean() > 5  # painted, not copied


def test_webm_with_opus_comes_back_as_mp4_with_aac(client):
    clip = pan_clip(160, 120, frames=10, container="webm", codec="libvpx-vp9", audio="libopus")
    r = send(client, clip, "video/webm", "?style=stripes&arch=fast")
    assert r.status_code == 200, r.data[:300]
    out = decode_clip(r.data)
    assert len(out.frames) == 10 and out.rate == 25
    assert [codec for codec, _ in out.audio] == ["aac"]


def test_av1_with_mp3_sound_is_read_by_codec_not_decoder_name(client):
    """FFmpeg decodes AV1 with libdav1d and MP3 with mp3float: the allow-list holds codecs."""
    clip = pan_clip(96, 64, frames=4, codec="libsvtav1", audio="libmp3lame")
    r = send(client, clip)
    assert r.status_code == 200, r.data[:300]
    out = decode_clip(r.data)
    assert len(out.frames) == 4 and [codec for codec, _ in out.audio] == ["mp3"]  # copied


def test_multipart_json_and_octet_stream_carry_a_video(client):
    clip = pan_clip(96, 64, frames=4, audio=None)
    r = client.post("/", data={"video": (io.BytesIO(clip), "clip.mp4"), "style": "dots"})
    assert r.status_code == 200 and len(decode_clip(r.data).frames) == 4
    r = client.post("/", json={"video": base64.b64encode(clip).decode(), "style": "dots"})
    assert r.status_code == 200
    body = r.get_json()
    assert (body["format"], body["frames"], body["fps"], body["audio"]) == ("mp4", 4, 25.0, False)
    assert len(decode_clip(base64.b64decode(body["video"])).frames) == 4
    r = send(client, clip, "application/octet-stream")
    assert r.status_code == 200 and r.mimetype == "video/mp4"


@pytest.mark.parametrize(
    "size,query,expected",
    [((161, 121), "", (160, 120)), ((160, 120), "?max_size=80", (80, 60))],
    ids=["odd-sides-lose-a-row-and-a-column", "max_size"],
)
def test_sizes_are_even_and_within_max_size(client, size, query, expected):
    w, h = size
    scene = scene_for(w, h, 4, 1)
    clip = encode_clip(
        pan_frames(scene, w, h, 4, 1, 0), container="webm", codec="libvpx-vp9", audio=None
    )
    r = send(client, clip, "video/webm", query)
    assert r.status_code == 200, r.data[:300]
    assert decode_clip(r.data).frames[0].shape[1::-1] == expected


def test_strength_zero_gives_the_clip_back_and_a_sideways_phone_clip_comes_back_upright(client):
    rgb = np.full((64, 96, 3), 40, np.uint8)
    rgb[:16, :16] = 230  # a bright corner, top left as stored
    clip = encode_clip([rgb] * 3, audio=None, rotation=90)  # shown turned counter-clockwise
    r = send(client, clip, query="?strength=0")
    assert r.status_code == 200, r.data[:300]
    out = decode_clip(r.data).frames[0].astype(int)
    expected = np.rot90(rgb)  # (96, 64): the stored top-left corner is shown bottom-left
    assert out.shape == expected.shape
    assert np.abs(out - expected).mean() < 3


def test_a_mix_of_two_styles_paints_a_video(make_client, multi_model_dir):
    mixed = make_client(MODEL_DIR=str(multi_model_dir))
    clip = pan_clip(96, 64, frames=3, audio=None)
    r = send(mixed, clip, query="?style=waves:0.5,checks:0.5")
    assert r.status_code == 200, r.data[:300]
    assert r.headers["X-Style-Model"] == "waves:0.5,checks:0.5/fast"
    only_waves = send(mixed, clip, query="?style=waves")
    assert (
        np.abs(
            decode_clip(r.data).frames[1].astype(int) - decode_clip(only_waves.data).frames[1]
        ).mean()
        > 1
    )  # the mix is not one of its styles


# --- flicker ------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [2, 0], ids=["pan-2px-a-frame", "still-camera"])
def test_a_clip_flickers_half_as_much_as_its_frames_painted_one_by_one(bundled_client, step):
    """The issue's measure: a noisy clip with a known motion, through the API as a video, and
    the same decoded frames sent one by one as photos."""
    w, h, n = 240, 160, 10
    clip = encode_clip(pan_frames(scene_for(w, h, n, step), w, h, n, step, 2.0), audio=None)
    style = "?style=starry_night&arch=fast"
    r = send(bundled_client, clip, query=style)
    assert r.status_code == 200, r.data[:300]
    video = decode_clip(r.data).frames
    photos = []
    for frame in decode_clip(clip).frames:
        p = bundled_client.post(
            "/" + style + "&format=png", data=still_image(frame), content_type="image/png"
        )
        assert p.status_code == 200
        photos.append(np.asarray(decoded(p.data)))
    ratio = warped_error(video, step) / warped_error(photos, step)
    assert ratio <= 0.5, ratio


# --- refusals -----------------------------------------------------------------------------------


def clip_with_streams(audio_streams: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as o:
        video = o.add_stream("libvpx-vp9", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        for _ in range(audio_streams):
            o.add_stream("libopus", rate=48000)
        black = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        o.mux(video.encode(black))
        o.mux(video.encode())
    return out.getvalue()


def motion_jpeg_clip() -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mov") as o:
        video = o.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuvj420p"
        o.mux(
            video.encode(
                av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            )
        )
        o.mux(video.encode())
    return out.getvalue()


def sound_only() -> bytes:
    from devtools.videos import write_tone

    with av.open(out := io.BytesIO(), "w", format="mp4") as o:
        sound = o.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        write_tone(o, sound, Fraction(1, 2))
    return out.getvalue()


def with_frame_count(clip: bytes, frames: int) -> bytes:
    """An MP4 whose time-to-sample table claims `frames` frames."""
    data = bytearray(clip)
    stts = data.index(b"stts")
    data[stts + 12 : stts + 16] = struct.pack(">I", frames)
    return bytes(data)


def scrambled(clip: bytes, at: float = 0.5, size: int = 2000) -> bytes:
    data = bytearray(clip)
    start = int(len(data) * at)
    data[start : start + size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    return bytes(data)


MP4 = pan_clip(160, 120, frames=10, faststart=True)
MP4_INDEX_LAST = pan_clip(160, 120, frames=10)
WEBM = pan_clip(160, 120, frames=10, container="webm", codec="libvpx-vp9", audio="libopus")
HOSTILE = [
    ("empty", b"", "video/mp4", 400, "invalid_video"),
    ("random-bytes", np.random.default_rng(1).bytes(5000), "video/mp4", 400, "invalid_video"),
    ("a-jpeg-sent-as-mp4", b"\xff\xd8\xff\xe0" + bytes(100), "video/mp4", 400, "invalid_video"),
    ("hls-playlist-sent-as-mp4", b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n", "video/mp4", 400, "invalid_video"),
    ("truncated-index-last", MP4_INDEX_LAST[: len(MP4_INDEX_LAST) // 2], "video/mp4", 400, "invalid_video"),
    ("truncated-index-first", MP4[: len(MP4) * 2 // 3], "video/mp4", 400, "invalid_video"),
    ("corrupt-mp4", scrambled(MP4), "video/mp4", 400, "invalid_video"),
    ("corrupt-webm", scrambled(WEBM), "video/webm", 400, "invalid_video"),
    ("sound-only", sound_only(), "video/mp4", 400, "invalid_video"),
    ("41-streams", clip_with_streams(40), "video/webm", 413, "video_too_large"),
    ("header-claims-a-billion-frames", with_frame_count(MP4, 1_000_000_000), "video/mp4", 413, "video_too_large"),
    ("motion-jpeg", motion_jpeg_clip(), "video/quicktime", 415, "unsupported_video"),
    ("2400x1600-frames", encode_clip([np.zeros((1600, 2400, 3), np.uint8)] * 2, audio=None), "video/mp4", 413, "video_too_large"),
    ("video-as-text", b"ftyp", "video/ogg", 415, "unsupported_media_type"),
]  # fmt: skip


@pytest.mark.parametrize("name,body,content_type,status,code", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_videos_get_their_json_error_quickly(
    client, name, body, content_type, status, code
):
    t0 = time.perf_counter()
    message = assert_error(send(client, body, content_type), status, code)
    assert time.perf_counter() - t0 < 5
    assert "Send" in message or "use" in message or "Scale" in message
    assert send(client, pan_clip(64, 48, frames=2, audio=None)).status_code == 200


@pytest.mark.parametrize(
    "env,code",
    [
        ({"MAX_VIDEO_FRAMES": "5"}, "video_too_large"),
        ({"MAX_VIDEO_SECONDS": "1"}, "video_too_large"),  # 40 frames at 25 fps: 1.6 s
        ({"MAX_VIDEO_PIXELS": "100000"}, "video_too_large"),  # 40 x 96 x 64 = 245,760
        ({"VIDEO_DEADLINE_S": "1"}, "deadline_exceeded"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else v,
)
def test_video_limits_are_configurable(make_client, env, code):
    limited = make_client(**env)
    clip = pan_clip(96, 64, frames=40, step=1, audio=None)
    if code == "deadline_exceeded":
        clip = pan_clip(480, 320, frames=200, step=1, audio=None)
    t0 = time.perf_counter()
    r = send(limited, clip)
    assert r.status_code == (503 if code == "deadline_exceeded" else 413), r.data[:300]
    assert r.get_json()["error"]["code"] == code
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize(
    "query,fragment", [("?format=png", "format must be mp4"), ("?quality=80", "quality applies")]
)
def test_photo_only_options_are_refused_for_a_video(client, query, fragment):
    message = assert_error(
        send(client, pan_clip(64, 48, frames=2, audio=None), query=query), 400, "invalid_parameter"
    )
    assert fragment in message


# --- a real server --------------------------------------------------------------------------------


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


@pytest.mark.slow
def test_a_real_server_streams_a_long_clip_in_bounded_memory(model_dir, tmp_path):
    """A 10 s clip after a 1 s one at the same size: decoded whole, its 250 frames would add
    55 MiB; streamed, the worker's peak grows by a few frames."""
    short = pan_clip(320, 240, frames=25, step=1, audio="aac")
    long = pan_clip(320, 240, frames=250, step=1, audio="aac")
    with FunctionServer(
        model_dir, {"VIDEO_DEADLINE_S": "600"}, log_path=tmp_path / "log"
    ) as server:
        url = server.url + "/?style=stripes&arch=fast"
        headers = {"Content-Type": "video/mp4"}
        assert requests.post(url, data=short, headers=headers, timeout=120).status_code == 200
        (worker,) = server.worker_pids()
        before = peak_kib(worker)
        r = requests.post(url, data=long, headers=headers, timeout=600)
        assert r.status_code == 200 and len(decode_clip(r.content).frames) == 250
        grown = (peak_kib(worker) - before) / 1024
        assert grown < 25, f"peak grew {grown:.0f} MiB"
        bad = requests.post(url, data=MP4[:3000], headers=headers, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_video"
