"""The Python client (styleclient) against the real function, and against a stand-in server
that answers 503 on cue and reports the Authorization headers and the file parts it saw."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from devtools.videos import decode_clip, pan_clip
from styleclient import StyleClient, StyleServeError
from styleclient.cli import build_parser, request_options
from styleclient.client import OPTIONS, sniffed_video_type, video_type

ROOT = Path(__file__).resolve().parents[1]

# The stand-in picks its behaviour from the bearer token, so one server covers every case and
# tests stay independent: each flaky-* token gets 503 twice then 200, down-* tokens always 503,
# late-* tokens always 503 deadline_exceeded, slow-* tokens answer after a second.
# /seen lists the Authorization headers it got, in order; /parts the file parts, as
# [field, filename, content type].
STANDIN = """
import threading
import time

import flask
import functions_framework

seen = []
parts = []
lock = threading.Lock()


def busy(code, message):
    return flask.Response(
        '{"error": {"code": "%s", "message": "%s"}}' % (code, message),
        status=503, headers={"Retry-After": "0"}, mimetype="application/json",
    )


@functions_framework.http
def stylize(request):
    if request.path == "/healthz":
        return {"status": "ok"}
    if request.path == "/seen":
        return {"seen": seen}
    if request.path == "/parts":
        return {"parts": parts}
    auth = request.headers.get("Authorization", "")
    field, upload = next(iter(request.files.items()))
    with lock:
        seen.append(auth)
        parts.append([field, upload.filename, upload.mimetype])
        calls = seen.count(auth)
    if auth.startswith("Bearer down") or (auth.startswith("Bearer flaky") and calls <= 2):
        return busy("overloaded", "All slots busy.")
    if auth.startswith("Bearer late"):
        return busy("deadline_exceeded", "Past the deadline.")
    if auth.startswith("Bearer slow"):
        time.sleep(1)
    mimetype = "video/mp4" if field == "video" else "image/jpeg"
    return flask.Response(upload.read()[::-1], mimetype=mimetype)
"""


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "styleclient", *args],
        cwd=ROOT,  # importable from a checkout, installed or not
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


@pytest.fixture(scope="module")
def standin(tmp_path_factory, serve_function):
    d = tmp_path_factory.mktemp("standin")
    (d / "main.py").write_text(STANDIN)
    with serve_function(d / "main.py", d / "server.log", {"WORKERS": "1"}) as url:
        yield url


def seen_tokens(url: str) -> list[str]:
    return requests.get(url + "/seen", timeout=10).json()["seen"]


def seen_parts(url: str) -> list[list[str]]:
    return requests.get(url + "/parts", timeout=10).json()["parts"]


@pytest.fixture(scope="module")
def clip() -> bytes:
    """A real MP4 of 4 frames, 96x64, without sound: painted in a moment by the tiny models."""
    return pan_clip(96, 64, frames=4, audio=None)


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    """The same 4 frames in each container the client names by suffix: suffix -> bytes."""
    return {
        ".mp4": pan_clip(96, 64, frames=4, audio=None),
        ".mov": pan_clip(96, 64, frames=4, audio=None, container="mov"),
        ".webm": pan_clip(96, 64, frames=4, audio=None, container="webm", codec="libvpx-vp9"),
        ".mkv": pan_clip(96, 64, frames=4, audio=None, container="matroska"),
    }


def unused_url() -> str:
    """A URL nothing listens on: a request that reached it would fail with 'could not reach'."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- the command line, against the real function ---------------------------------------------


def test_one_photo_with_every_option(live_server, photo_dir, tmp_path):
    out = tmp_path / "out" / "result.png"
    result = run_cli(
        str(photo_dir / "photo_2.jpg"), "--url", live_server, "-o", str(out), "--style",
        "stripes", "--strength", "0.7", "--preserve-color", "--max-size", "50", "--quality", "80",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with Image.open(out) as img:
        # -o result.png asks for PNG; max_size 50 shrank the 94x82 photo
        assert img.format == "PNG" and img.size == (50, 44)


def test_a_folder_goes_on_past_errors(live_server, photo_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("photo_0.jpg", "photo_1.jpg", "photo_3.jpg"):
        shutil.copy(photo_dir / name, photos / name)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / "notes.txt").write_text("not a photo, and not sent")
    out = tmp_path / "stylized"

    result = run_cli(str(photos), "--url", live_server, "-o", str(out), "--format", "webp")
    assert result.returncode == 1  # one photo failed
    assert sorted(p.name for p in out.iterdir()) == ["photo_0.webp", "photo_1.webp", "photo_3.webp"]
    for name in ("photo_0", "photo_1", "photo_3"):
        assert size_of(out / f"{name}.webp") == size_of(photo_dir / f"{name}.jpg")
    assert "4/4" in result.stderr  # the progress bar reached the end
    assert "broken.jpg: 400 invalid_image:" in result.stderr
    assert "3 of 4 photos stylized" in result.stdout and "1 failed: broken.jpg" in result.stdout


def test_a_client_error_is_one_line_with_the_api_code(live_server, photo_dir):
    result = run_cli(str(photo_dir / "photo_0.jpg"), "--url", live_server, "--style", "nope")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: 404 unknown_style: No style named 'nope'. Available styles: dots, stripes "
        "(GET /styles lists them)."
    ]


def test_list_styles(live_server):
    result = run_cli("--list-styles", "--url", live_server)
    assert result.returncode == 0
    assert result.stdout.splitlines()[:2] == [
        "* dots                 Dots (Test Painter; johnson)",
        "  stripes              Stripes (Test Painter; johnson, fast)",
    ]


def test_a_mix_from_the_library_and_the_command_line(live_mix_server, photo_dir, tmp_path):
    client = StyleClient(live_mix_server)
    photo = photo_dir / "photo_1.jpg"
    as_dict = client.stylize(photo, style={"waves": 0.7, "checks": 0.3}, format="png")
    as_text = client.stylize(photo, style="waves:0.7,checks:0.3", format="png")
    waves = client.stylize(photo, style="waves", format="png")
    assert as_dict == as_text != waves
    out = tmp_path / "mixed.png"
    result = run_cli(
        str(photo), "--url", live_mix_server, "-o", str(out), "--style", "waves:0.7,checks:0.3"
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == as_text
    listing = run_cli("--list-styles", "--url", live_mix_server).stdout
    assert "waves                Waves (unknown; fast; mixes with checks)" in listing


def test_default_output_name_is_next_to_the_photo(live_server, photo_dir, tmp_path):
    photo = tmp_path / "holiday.jpg"
    shutil.copy(photo_dir / "photo_4.jpg", photo)
    assert run_cli(str(photo), "--url", live_server).returncode == 0
    assert size_of(tmp_path / "holiday-stylized.jpg") == size_of(photo)


def test_a_video_comes_back_as_an_mp4_with_every_frame(live_server, clip, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip)
    result = run_cli(
        str(video), "--url", live_server, "--style", "stripes", "--arch", "fast",
        "--strength", "0.7", "--preserve-color", "--max-size", "48", "--stroke-scale", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip-stylized.mp4"  # the default name: next to the video, an .mp4
    assert result.stdout.strip() == f"{video} -> {out}"
    assert "painting a video" in result.stderr  # said before the wait, not after
    painted = decode_clip(out.read_bytes())
    assert len(painted.frames) == 4 and painted.codec == "h264"
    assert painted.frames[0].shape == (32, 48, 3)  # max_size 48 shrank the 96x64 clip
    # every option reached the server: the library's request with the same options paints the
    # same frames (compared decoded: CI once saw the two MP4s' bytes differ on a loaded machine)
    again = decode_clip(
        StyleClient(live_server).stylize(
            clip, style="stripes", arch="fast", strength=0.7, preserve_color=True, max_size=48,
            stroke_scale=2,
        )
    ).frames  # fmt: skip
    plain = decode_clip(StyleClient(live_server).stylize(clip, style="stripes", arch="fast")).frames
    assert len(again) == len(painted.frames)
    for mine, theirs in zip(painted.frames, again, strict=True):
        assert np.abs(mine.astype(np.int16) - theirs).mean() < 2
    assert plain[0].shape != painted.frames[0].shape  # while leaving the options out shows


def test_a_video_by_its_suffix_or_its_bytes_and_format_mp4(live_server, clips, tmp_path):
    for suffix, data in clips.items():
        video = tmp_path / f"clip{suffix}"
        video.write_bytes(data)
        out = tmp_path / f"out{suffix}.mp4"
        result = run_cli(str(video), "--url", live_server, "-o", str(out), "--format", "mp4")
        assert result.returncode == 0, (suffix, result.stderr)
        assert len(decode_clip(out.read_bytes()).frames) == 4, suffix
    # a video under a name that does not say so is known by its first bytes
    unnamed = tmp_path / "clip.bin"
    unnamed.write_bytes(clips[".mov"])
    result = run_cli(str(unnamed), "--url", live_server, "--style", "dots")
    assert result.returncode == 0, result.stderr
    assert len(decode_clip((tmp_path / "clip-stylized.mp4").read_bytes()).frames) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "png"], "--format png is for photos; a video comes back as mp4 (leave --format out)"),
        (["--quality", "80"], "--quality is for photos (JPEG, WebP); leave it out for a video"),
        (["-o", "{tmp}/out.jpg"], "-o {tmp}/out.jpg: a video comes back as an MP4; name the output .mp4"),
    ],
    ids=["format", "quality", "output-name"],
)  # fmt: skip
def test_photo_options_are_refused_for_a_video_before_sending(clip, tmp_path, args, message):
    video = tmp_path / "clip.mov"
    video.write_bytes(clip)
    args = [a.format(tmp=tmp_path) for a in args]
    result = run_cli(str(video), "--url", unused_url(), *args)  # refused before any request
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {message.format(tmp=tmp_path)}"]
    assert not list(tmp_path.glob("*stylized*")) and not (tmp_path / "out.jpg").exists()


def test_format_mp4_is_refused_for_photos_before_sending(photo_dir, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(photo_dir / "photo_0.jpg", photos)
    for target in (photos / "photo_0.jpg", photos):  # one photo, a folder of them
        result = run_cli(str(target), "--url", unused_url(), "--format", "mp4")
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "error: --format mp4 is for videos; a photo comes back as jpeg, png or webp"
        ]


def test_a_painting_of_ones_own_from_the_command_line_and_the_library(
    live_server, photo_dir, style_path, tmp_path
):
    photo = photo_dir / "photo_3.jpg"
    out = tmp_path / "own.png"
    result = run_cli(
        str(photo), "--url", live_server, "--style-image", str(style_path), "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert size_of(out) == size_of(photo)
    client = StyleClient(live_server)
    # the same painting from a path or as bytes, and the painting really reached the server
    from_path = client.stylize(photo, style_image=style_path, format="png")
    assert client.stylize(photo, style_image=style_path.read_bytes(), format="png") == from_path
    assert from_path == out.read_bytes()
    other = photo_dir / "photo_0.jpg"  # another picture as the painting paints otherwise
    assert client.stylize(photo, style_image=other, format="png") != from_path
    assert client.stylize(photo, format="png") != from_path  # and so does the default style
    # a folder: every photo painted like the same painting
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("photo_1.jpg", "photo_2.jpg"):
        shutil.copy(photo_dir / name, photos)
    result = run_cli(str(photos), "--url", live_server, "--style-image", str(style_path))
    assert result.returncode == 0, result.stderr
    assert "2 of 2 photos stylized" in result.stdout
    # the server's refusal of a painting that is not a picture is one line with its code
    bad = tmp_path / "painting.jpg"
    bad.write_bytes(b"not a painting")
    result = run_cli(str(photo), "--url", live_server, "--style-image", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("error: 400 invalid_image: style_image: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--style", "dots"], "--style and --style-image: choose one (--style names one of the service's paintings, see --list-styles; --style-image brings your own)"),
        (["--arch", "fast"], "--arch applies to named styles; leave it out with --style-image"),
    ],
    ids=["style", "arch"],
)  # fmt: skip
def test_style_image_refusals_before_sending(photo_dir, style_path, args, message):
    photo = str(photo_dir / "photo_0.jpg")
    result = run_cli(photo, "--url", unused_url(), "--style-image", str(style_path), *args)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: {message}"]


def test_style_image_must_be_a_picture_and_goes_with_photos(photo_dir, clip, tmp_path):
    photo = str(photo_dir / "photo_0.jpg")
    video = tmp_path / "clip.mp4"
    video.write_bytes(clip)
    cases = [
        ([photo, "--style-image", str(tmp_path / "missing.jpg")],
         f"--style-image {tmp_path / 'missing.jpg'}: no such file"),
        ([photo, "--style-image", str(video)],
         f"--style-image {video} is a video; give a picture (JPEG, PNG, WebP, ...)"),
        ([str(video), "--style-image", photo],
         "--style-image works with photos; give a photo or a folder of photos, or use --style "
         "for a video"),
    ]  # fmt: skip
    for args, message in cases:
        result = run_cli(*args, "--url", unused_url())
        assert result.returncode == 1, args
        assert result.stderr.splitlines() == [f"error: {message}"]
    client = StyleClient(unused_url(), retries=0)
    for options in ({"style": "dots"}, {"arch": "fast"}):
        with pytest.raises(ValueError, match="style_image"):
            client.stylize(photo, style_image=photo, **options)
    with pytest.raises(ValueError, match="works with photos"):
        client.stylize(clip, style_image=photo)


# --- the importable API -----------------------------------------------------------------------


def test_library_stylizes_bytes_and_lists_styles(live_server, photo_dir):
    client = StyleClient(live_server)
    assert [s["name"] for s in client.styles()["styles"]] == ["dots", "stripes"]
    data = (photo_dir / "photo_5.jpg").read_bytes()
    small = client.stylize(data, quality=10)
    large = client.stylize(data, quality=95)
    assert len(small) < len(large)  # quality reached the encoder
    png = Image.open(io.BytesIO(client.stylize(data, format="png", preserve_color=True)))
    assert png.format == "PNG" and png.size == size_of(photo_dir / "photo_5.jpg")
    with pytest.raises(TypeError, match="unknown option"):
        client.stylize(data, colour=True)
    with pytest.raises(StyleServeError) as error:
        client.stylize(data, strength=2)
    assert (error.value.status, error.value.code) == (400, "invalid_parameter")


def test_library_stylizes_a_video_from_bytes_or_a_path(live_mix_server, clips, tmp_path):
    client = StyleClient(live_mix_server)
    mixed = client.stylize(clips[".mp4"], style={"waves": 0.7, "checks": 0.3})  # bytes: sniffed
    assert len(decode_clip(mixed).frames) == 4
    waves = client.stylize(clips[".mp4"], style="waves", format="mp4")
    assert mixed != waves  # the mix reached the server
    path = tmp_path / "clip.webm"
    path.write_bytes(clips[".webm"])
    assert len(decode_clip(client.stylize(path, style="waves")).frames) == 4
    for bad in ({"format": "png"}, {"quality": 80}):
        with pytest.raises(ValueError, match="for a video"):
            client.stylize(clips[".mp4"], **bad)
    with pytest.raises(StyleServeError) as error:
        client.stylize(b"\x1a\x45\xdf\xa3 not a real webm")
    assert (error.value.status, error.value.code) == (400, "invalid_video")


def test_what_is_a_video(clips, photo_dir):
    for suffix, data in clips.items():
        assert video_type("", data) == video_type(f"clip{suffix}", b""), suffix
        assert video_type("CLIP" + suffix.upper(), b"") is not None
    assert video_type("", clips[".mov"]) == "video/quicktime"
    assert video_type("", clips[".webm"]) == "video/webm"
    assert video_type("", clips[".mkv"]) == "video/x-matroska"
    assert video_type("clip.m4v", b"") == "video/mp4"
    for name in ("photo_0.jpg", "photo_1.jpg"):
        assert video_type(name, (photo_dir / name).read_bytes()) is None
    assert video_type("", b"\x89PNG\r\n\x1a\n") is None
    # HEIC and AVIF photos start with an ftyp box too: their brand says they are stills
    for brand in (b"heic", b"avif", b"mif1"):
        assert sniffed_video_type(b"\x00\x00\x00\x18ftyp" + brand) is None
    assert sniffed_video_type(b"\x00\x00\x00\x18ftypisom") == "video/mp4"


def test_the_client_has_every_request_option_the_api_has():
    from stylefn.http.options import FIELDS

    assert sorted(OPTIONS) == sorted(FIELDS)
    args = build_parser().parse_args(["photo.jpg"])
    assert sorted(request_options(args, None)) == sorted(FIELDS)  # one flag per option


def test_arch_reaches_the_server(live_server, photo_dir, tmp_path):
    data = (photo_dir / "photo_5.jpg").read_bytes()
    client = StyleClient(live_server)
    fast = client.stylize(data, style="stripes", arch="fast", format="png")
    johnson = client.stylize(data, style="stripes", arch="johnson", format="png")
    assert fast != johnson  # two networks, two results
    with pytest.raises(StyleServeError) as error:
        client.stylize(data, style="dots", arch="fast")  # dots comes in johnson only
    assert (error.value.status, error.value.code) == (404, "arch_unavailable")
    result = run_cli(
        str(photo_dir / "photo_5.jpg"), "--url", live_server, "-o", str(tmp_path / "out.png"),
        "--style", "stripes", "--arch", "fast",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").read_bytes() == fast


# --- retries and tokens, against the stand-in -------------------------------------------------


def test_retries_503_honouring_retry_after_and_sends_the_token(standin):
    delays: list[float] = []
    # A huge backoff: only Retry-After: 0 keeps this fast, so a client ignoring it fails below.
    client = StyleClient(
        standin, "flaky-lib", backoff_s=100, max_backoff_s=3, on_retry=lambda _, d: delays.append(d)
    )
    assert client.stylize(b"\x01\x02\x03") == b"\x03\x02\x01"
    assert delays == [0.0, 0.0]
    assert seen_tokens(standin).count("Bearer flaky-lib") == 3


def test_retries_are_bounded(standin):
    client = StyleClient(standin, "down-lib", retries=2)
    with pytest.raises(StyleServeError) as error:
        client.stylize(b"x")
    assert (error.value.status, error.value.code) == (503, "overloaded")
    assert seen_tokens(standin).count("Bearer down-lib") == 3  # 1 try + 2 retries


def test_a_video_is_sent_as_a_video_part_with_its_type(standin, clips, tmp_path):
    client = StyleClient(standin, "parts")
    assert client.stylize(clips[".mp4"]) == clips[".mp4"][::-1]
    path = tmp_path / "holiday.mov"
    path.write_bytes(b"any bytes: the name says video")
    client.stylize(path)
    client.stylize(b"\x01\x02\x03")
    assert seen_parts(standin)[-3:] == [
        ["video", "video", "video/mp4"],
        ["video", "holiday.mov", "video/quicktime"],
        ["image", "image", "application/octet-stream"],  # photos as ever
    ]


def test_a_video_past_its_deadline_is_not_sent_again(standin, clip):
    client = StyleClient(standin, "late-video", retries=2)
    with pytest.raises(StyleServeError) as error:
        client.stylize(clip)  # minutes of painting would run out again
    assert (error.value.status, error.value.code) == (503, "deadline_exceeded")
    assert seen_tokens(standin).count("Bearer late-video") == 1
    client = StyleClient(standin, "late-photo", retries=2)
    with pytest.raises(StyleServeError):
        client.stylize(b"photo")  # seconds of work: worth another try
    assert seen_tokens(standin).count("Bearer late-photo") == 3


def test_a_video_waits_for_video_timeout_s(standin, clip):
    client = StyleClient(standin, "slow-timeouts", timeout_s=0.3, video_timeout_s=30, retries=0)
    start = time.monotonic()
    assert client.stylize(clip) == clip[::-1]  # answered after a second
    assert time.monotonic() - start >= 1
    with pytest.raises(requests.Timeout):
        client.stylize(b"photo")  # the photo's timeout is still its own


def test_connection_errors_are_retried_then_reported():
    with socket.socket() as s:  # a port that nothing listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reasons: list[str] = []
    client = StyleClient(
        f"http://127.0.0.1:{port}",
        retries=2,
        backoff_s=0.01,
        on_retry=lambda r, _: reasons.append(r),
    )
    with pytest.raises(requests.ConnectionError):
        client.styles()
    assert len(reasons) == 2 and "connection failed" in reasons[0]


def test_cli_token_from_the_environment_and_retry_messages(standin, tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"abc")
    out = tmp_path / "out.jpg"
    result = run_cli(str(photo), "--url", standin, "-o", str(out), STYLESERVE_TOKEN="flaky-cli")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"cba"
    assert result.stderr.count("retrying in 0.0 s: 503 overloaded: All slots busy.") == 2
    assert "Bearer flaky-cli" in seen_tokens(standin)
    result = run_cli(str(photo), "--url", standin, "--token", "down-cli", "--retries", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: 503 overloaded: All slots busy."


def test_cli_gets_a_token_from_gcloud(standin, tmp_path):
    # a stand-in `gcloud` on PATH: the real one would need a Google account
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gcloud = bin_dir / "gcloud"
    gcloud.write_text('#!/bin/sh\n[ "$*" = "auth print-identity-token" ] && echo from-gcloud\n')
    gcloud.chmod(0o755)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"abc")
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    result = run_cli(str(photo), "--url", standin, "--gcloud-token", PATH=path)
    assert result.returncode == 0, result.stderr
    assert seen_tokens(standin)[-1] == "Bearer from-gcloud"
    gcloud.write_text("#!/bin/sh\necho 'ERROR: not logged in' >&2; exit 1\n")
    result = run_cli(str(photo), "--url", standin, "--gcloud-token", PATH=path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: gcloud auth print-identity-token failed: ERROR: not logged in"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None), ("soon", None)],
)
def test_retry_after_seconds_or_http_date(value, seconds):
    from styleclient.client import retry_after_s

    assert retry_after_s(value) == seconds


def test_retry_after_in_the_future():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from styleclient.client import retry_after_s

    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_s(when) or 0) <= 30
