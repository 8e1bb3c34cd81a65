"""The HTTP function, through functions-framework's real app, on models our own code exported."""

from __future__ import annotations

import base64
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import decoded, encode, make_photo

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "function" / "main.py")


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


PHOTO = make_photo(131, 97, seed=5)  # odd size: W=131, H=97
PHOTO_JPEG = encode(PHOTO, "JPEG", quality=95)


def post_multipart(client, data: bytes, **fields):
    return client.post("/", data={"image": (io.BytesIO(data), "photo.jpg"), **fields})


# --- the three request kinds ----------------------------------------------------------------


def test_multipart_returns_the_image_bytes(client):
    r = post_multipart(client, PHOTO_JPEG)
    assert r.status_code == 200
    assert r.mimetype == "image/jpeg"
    img = decoded(r.data)
    assert img.size == (131, 97) and img.format == "JPEG"
    assert "infer;dur=" in r.headers["Server-Timing"]


def test_json_returns_base64_and_details(client):
    r = client.post(
        "/stylize", json={"image": base64.b64encode(PHOTO_JPEG).decode(), "format": "png"}
    )
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = r.json
    assert (body["width"], body["height"], body["format"], body["style"]) == (
        131,
        97,
        "png",
        "dots",
    )
    assert set(body["timings_ms"]) == {"decode", "infer", "encode", "total"}
    assert decoded(base64.b64decode(body["image"])).size == (131, 97)


def test_json_accepts_a_data_uri_and_wrapped_base64(client):
    b64 = base64.encodebytes(PHOTO_JPEG).decode()  # wrapped at 76 columns, like `base64`
    r = client.post("/", json={"image": "data:image/jpeg;base64," + b64})
    assert r.status_code == 200


def test_raw_body_with_fields_in_the_query(client):
    r = client.post(
        "/?format=webp&style=stripes&quality=80", data=PHOTO_JPEG, content_type="image/jpeg"
    )
    assert r.status_code == 200 and r.mimetype == "image/webp"
    assert decoded(r.data).size == (131, 97)


def test_styles_and_health(client):
    styles = client.get("/styles").json
    assert styles["default"] == "dots"  # no starry_night here: the first name in order
    names = [s["name"] for s in styles["styles"]]
    assert names == ["dots", "stripes"]
    for s in styles["styles"]:
        assert s["loss_net"] == "random-vgg16" and s["training_steps"] == 8
        assert s["title"] and s["artist"] == "Test Painter"
    health = client.get("/healthz")
    assert health.json == {"status": "ok", "provider": "CPUExecutionProvider", "styles": 2}
    assert "Server-Timing" in health.headers


def test_styles_give_different_results(client):
    a = np.asarray(decoded(post_multipart(client, PHOTO_JPEG, style="stripes", format="png").data))
    b = np.asarray(decoded(post_multipart(client, PHOTO_JPEG, style="dots", format="png").data))
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1


# --- image formats ----------------------------------------------------------------------------


def _formats():
    rgba = PHOTO.convert("RGBA")
    return {
        "jpeg": encode(PHOTO, "JPEG"),
        "png": encode(PHOTO, "PNG"),
        "png-palette": encode(PHOTO.quantize(64), "PNG"),
        "png-16bit": encode(
            Image.fromarray(np.asarray(PHOTO.convert("L")).astype(np.uint16) * 257), "PNG"
        ),
        "png-alpha": encode(rgba, "PNG"),
        "webp": encode(PHOTO, "WEBP"),
        "gif": encode(PHOTO.quantize(32), "GIF"),
        "bmp": encode(PHOTO, "BMP"),
        "tiff": encode(PHOTO, "TIFF"),
        "grayscale": encode(PHOTO.convert("L"), "JPEG"),
        "cmyk": encode(PHOTO.convert("CMYK"), "JPEG"),
    }


@pytest.mark.parametrize("kind", list(_formats()))
def test_every_accepted_format(client, kind):
    r = post_multipart(client, _formats()[kind], format="png")
    assert r.status_code == 200, r.json
    assert decoded(r.data).size == (131, 97)


def test_exif_orientation_is_applied(client):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    r = post_multipart(client, encode(PHOTO, "JPEG", exif=exif))
    assert decoded(r.data).size == (97, 131)


def test_alpha_is_kept_for_png_and_webp(client):
    rgba = PHOTO.convert("RGBA")
    alpha = np.zeros((97, 131), np.uint8)
    alpha[:, 60:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    for fmt in ("png", "webp"):
        out = decoded(post_multipart(client, encode(rgba, "PNG"), format=fmt).data)
        assert out.mode == "RGBA"
        got = np.asarray(out)[..., 3]
        assert got[:, :50].max() <= 5 and got[:, 70:].min() >= 250
    jpeg = decoded(post_multipart(client, encode(rgba, "PNG"), format="jpeg").data)
    assert jpeg.mode == "RGB"
    assert np.asarray(jpeg)[:, :50].min() >= 240  # transparent part flattened onto white


def test_max_size_shrinks_and_keeps_the_aspect_ratio(client):
    r = post_multipart(client, encode(make_photo(400, 200), "PNG"), max_size="100")
    assert decoded(r.data).size == (100, 50)


def test_strength_zero_gives_back_the_original(client):
    png = encode(PHOTO, "PNG")
    out = np.asarray(decoded(post_multipart(client, png, strength="0", format="png").data))
    assert np.abs(out.astype(int) - np.asarray(PHOTO).astype(int)).max() <= 1
    full = np.asarray(decoded(post_multipart(client, png, format="png").data))
    half = np.asarray(decoded(post_multipart(client, png, strength="0.5", format="png").data))
    expected = (full.astype(float) + np.asarray(PHOTO)) / 2
    assert np.abs(half - expected).max() <= 1


def test_preserve_color_keeps_the_original_colours(client):
    png = encode(PHOTO, "PNG")
    plain = decoded(post_multipart(client, png, format="png").data)
    kept = decoded(post_multipart(client, png, format="png", preserve_color="true").data)

    def chroma(img):
        return np.asarray(img.convert("YCbCr"))[..., 1:].astype(int)

    original = chroma(PHOTO)
    kept_gap, plain_gap = (
        np.abs(chroma(kept) - original).mean(),
        np.abs(chroma(plain) - original).mean(),
    )
    assert kept_gap < 0.1 * plain_gap  # colour clipping at the gamut edge leaves a little
    luma = np.asarray(kept.convert("L")).astype(int) - np.asarray(plain.convert("L")).astype(int)
    assert np.abs(luma).mean() < 3  # brightness comes from the stylized image


# --- errors -----------------------------------------------------------------------------------


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.data[:300]
    assert r.mimetype == "application/json"
    error = r.json["error"]
    assert error["code"] == code and len(error["message"]) > 20
    assert "Traceback" not in error["message"]
    assert "Server-Timing" in r.headers
    return error


@pytest.mark.parametrize(
    "send,status,code",
    [
        (lambda c: c.post("/", data=b"", content_type="image/jpeg"), 400, "invalid_image"),
        (
            lambda c: c.post(
                "/", data=b"\x89PNG\r\n\x1a\n" + os.urandom(200), content_type="image/png"
            ),
            400,
            "invalid_image",
        ),
        (
            lambda c: c.post(
                "/", data=PHOTO_JPEG[: len(PHOTO_JPEG) // 2], content_type="image/jpeg"
            ),
            400,
            "invalid_image",
        ),
        (lambda c: c.post("/", json={"image": "not base64 !!"}), 400, "invalid_image"),
        (lambda c: c.post("/", json={"style": "dots"}), 400, "invalid_parameter"),
        (lambda c: c.post("/", json={"image": 12}), 400, "invalid_parameter"),
        (
            lambda c: c.post("/", data=b"[1, 2]", content_type="application/json"),
            400,
            "invalid_request",
        ),
        (lambda c: post_multipart(c, PHOTO_JPEG, strength="2"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, strength="nan"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, quality="0"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, max_size="99999"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, format="gif"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, preserve_color="maybe"), 400, "invalid_parameter"),
        (lambda c: post_multipart(c, PHOTO_JPEG, colour="red"), 400, "invalid_parameter"),
        (
            lambda c: c.post("/", data={"file": (io.BytesIO(PHOTO_JPEG), "a.jpg")}),
            400,
            "invalid_parameter",
        ),
        (lambda c: post_multipart(c, PHOTO_JPEG, style="../../etc/passwd"), 404, "unknown_style"),
        (lambda c: post_multipart(c, PHOTO_JPEG, style="ü" * 10_000), 404, "unknown_style"),
        (
            lambda c: c.post("/", data="a=b", content_type="application/x-www-form-urlencoded"),
            415,
            "unsupported_media_type",
        ),
        (
            lambda c: c.post("/", data=b"<svg/>", content_type="image/svg+xml"),
            415,
            "unsupported_media_type",
        ),
        (lambda c: c.post("/", data=PHOTO_JPEG), 415, "unsupported_media_type"),
        (lambda c: c.delete("/"), 405, "method_not_allowed"),
        (lambda c: c.post("/styles"), 405, "method_not_allowed"),
        (lambda c: c.get("/nowhere"), 404, "not_found"),
    ],
)
def test_client_mistakes_get_json_errors(client, send, status, code):
    error = assert_error(send(client), status, code)
    if code == "unknown_style":
        assert "dots, stripes" in error["message"] and len(error["message"]) < 300


def test_style_names_never_reach_the_filesystem(client, model_dir):
    # a name that is a real file path relative to the models folder is still just a name
    assert_error(
        post_multipart(client, PHOTO_JPEG, style=str(model_dir / "dots")), 404, "unknown_style"
    )


def test_payload_and_pixel_limits(make_client):
    small = make_client(MAX_REQUEST_BYTES="5000", MAX_PIXELS="10000")
    big_body = encode(make_photo(300, 300), "PNG")
    assert len(big_body) > 5000
    error = assert_error(
        small.post("/", data=big_body, content_type="image/png"), 413, "payload_too_large"
    )
    assert "MAX_REQUEST_BYTES" in error["message"]
    assert_error(post_multipart(small, big_body), 413, "payload_too_large")
    error = assert_error(
        small.post(
            "/", data=encode(make_photo(120, 100), "JPEG", quality=30), content_type="image/jpeg"
        ),
        413,
        "image_too_large",
    )
    assert "120x100" in error["message"]


def test_internal_errors_are_logged_not_shown(client, capfd, monkeypatch):
    def explode(style, rgb):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.module.instance().registry, "stylize", explode)
    error = assert_error(post_multipart(client, PHOTO_JPEG), 500, "internal")
    assert "secret" not in error["message"]
    logged = capfd.readouterr().out
    assert "secret internals" in logged and "Traceback" in logged


def test_one_json_log_line_per_request(client, capfd):
    capfd.readouterr()
    post_multipart(client, PHOTO_JPEG, style="stripes")
    lines = [
        json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert len(lines) == 1
    entry = lines[0]
    assert entry["severity"] == "INFO" and entry["status"] == 200 and entry["style"] == "stripes"
    assert (entry["width"], entry["height"]) == (131, 97)
    assert set(entry["timings_ms"]) == {"decode", "infer", "encode", "total"}


def test_cors_is_off_by_default_and_on_when_configured(client, make_client):
    r = client.get("/styles", headers={"Origin": "https://example.com"})
    assert "Access-Control-Allow-Origin" not in r.headers
    cors = make_client(CORS_ORIGINS="https://example.com")
    r = cors.get("/styles", headers={"Origin": "https://example.com"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://example.com"
    r = cors.get("/styles", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_sixteen_threads_match_serial_results(client):
    photos = [encode(make_photo(64 + i, 48 + i, seed=i), "PNG") for i in range(16)]

    def run(data):
        r = post_multipart(client, data, format="png", style=("dots", "stripes")[len(data) % 2])
        assert r.status_code == 200
        return r.data

    serial = [run(p) for p in photos]
    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(run, photos))
    assert parallel == serial


# --- a real server process --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(live_server):
    return live_server


def test_real_server_all_request_kinds(server):
    r = requests.post(server, files={"image": ("p.jpg", PHOTO_JPEG, "image/jpeg")}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert decoded(r.content).size == (131, 97)
    r = requests.post(
        server + "/stylize?format=png",
        data=PHOTO_JPEG,
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert r.status_code == 200 and decoded(r.content).format == "PNG"
    r = requests.post(server, json={"image": base64.b64encode(PHOTO_JPEG).decode()}, timeout=30)
    assert r.status_code == 200 and r.json()["width"] == 131
    assert "total;dur=" in r.headers["Server-Timing"]


def test_real_server_refuses_an_oversized_body_cleanly(server):
    r = requests.post(
        server, data=b"\0" * (21 * 2**20), headers={"Content-Type": "image/jpeg"}, timeout=60
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert requests.get(server + "/healthz", timeout=10).ok  # and still serves
