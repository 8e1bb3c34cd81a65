"""The Python client (styleclient) against the real function, and against a stand-in server
that answers 503 on cue and reports the Authorization headers it saw."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from PIL import Image

from styleclient import StyleClient, StyleServeError
from styleclient.cli import build_parser, request_options
from styleclient.client import OPTIONS

ROOT = Path(__file__).resolve().parents[1]

# The stand-in picks its behaviour from the bearer token, so one server covers every case and
# tests stay independent: each flaky-* token gets 503 twice then 200, down-* tokens always 503.
# /seen lists the Authorization headers it got, in order.
STANDIN = """
import threading

import flask
import functions_framework

seen = []
lock = threading.Lock()


@functions_framework.http
def stylize(request):
    if request.path == "/healthz":
        return {"status": "ok"}
    if request.path == "/seen":
        return {"seen": seen}
    auth = request.headers.get("Authorization", "")
    with lock:
        seen.append(auth)
        calls = seen.count(auth)
    if auth.startswith("Bearer down") or (auth.startswith("Bearer flaky") and calls <= 2):
        return flask.Response(
            '{"error": {"code": "overloaded", "message": "All slots busy."}}',
            status=503, headers={"Retry-After": "0"}, mimetype="application/json",
        )
    return flask.Response(request.files["image"].read()[::-1], mimetype="image/jpeg")
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
