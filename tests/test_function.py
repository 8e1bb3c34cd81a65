"""The HTTP function, through functions-framework's real app, on models our own code exported."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from devtools.images import make_photo
from tests.conftest import decoded, encode

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "function" / "main.py")


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


PHOTO = make_photo(131, 97, seed=5)  # odd size: W=131, H=97
PHOTO_JPEG = encode(PHOTO, "JPEG", quality=95)
PHOTO_B64 = base64.b64encode(PHOTO_JPEG).decode()


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
    assert styles["default_arch"] == "fast"  # the CPU provider's choice
    names = [s["name"] for s in styles["styles"]]
    assert names == ["dots", "stripes"]  # each style once, whatever its archs
    for s in styles["styles"]:
        assert s["title"] and s["artist"] == "Test Painter"
        assert [m["arch"] for m in s["models"]] == s["archs"]
        for m in s["models"]:
            assert m["loss_net"] == "imagenet-efficientnet-lite0" and m["training_steps"] == 8
            assert m["precision"] == "fp32" and m["image_size"] == 64
    dots, stripes = styles["styles"]
    assert (dots["archs"], dots["default_arch"]) == (["johnson"], "johnson")  # has no fast
    assert (stripes["archs"], stripes["default_arch"]) == (["johnson", "fast"], "fast")
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
        (lambda c: post_multipart(c, PHOTO_JPEG, arch="turbo"), 400, "invalid_parameter"),
        (
            lambda c: c.post("/", json={"image": PHOTO_B64, "arch": ["fast"]}),
            400,
            "invalid_parameter",
        ),
        (
            lambda c: post_multipart(c, PHOTO_JPEG, style="dots", arch="fast"),
            404,
            "arch_unavailable",
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


# --- archs: one style, several networks --------------------------------------------------------


def stylized_png(r) -> np.ndarray:
    assert r.status_code == 200, r.data[:300]
    return np.asarray(decoded(r.data)).astype(int)


def test_arch_is_chosen_by_the_request_in_every_request_kind(client):
    png = encode(PHOTO, "PNG")
    by_form = {
        arch: post_multipart(client, png, style="stripes", arch=arch, format="png")
        for arch in ("johnson", "fast")
    }
    for arch, r in by_form.items():
        assert r.headers["X-Style-Model"] == f"stripes/{arch}"
    johnson, fast = stylized_png(by_form["johnson"]), stylized_png(by_form["fast"])
    assert np.abs(johnson - fast).mean() > 1  # two different networks
    by_query = client.post(
        "/?style=stripes&arch=FAST&format=png", data=png, content_type="image/png"
    )
    assert by_query.headers["X-Style-Model"] == "stripes/fast"
    assert np.array_equal(stylized_png(by_query), fast)
    by_json = client.post(
        "/", json={"image": base64.b64encode(png).decode(), "style": "stripes", "arch": "johnson"}
    )
    assert (by_json.json["style"], by_json.json["arch"]) == ("stripes", "johnson")
    assert by_json.headers["X-Style-Model"] == "stripes/johnson"


def test_default_arch_is_fast_on_cpu_else_what_the_style_has(client):
    r = post_multipart(client, PHOTO_JPEG, style="stripes")
    assert r.headers["X-Style-Model"] == "stripes/fast"
    r = post_multipart(client, PHOTO_JPEG, style="dots")  # dots has only johnson
    assert r.headers["X-Style-Model"] == "dots/johnson"
    r = post_multipart(client, PHOTO_JPEG, style="stripes", arch="")  # empty: the default
    assert r.headers["X-Style-Model"] == "stripes/fast"


def test_default_arch_env_var(make_client):
    johnson = make_client(DEFAULT_ARCH="johnson", DEFAULT_STYLE="stripes")
    assert johnson.get("/styles").json["default_arch"] == "johnson"
    r = post_multipart(johnson, PHOTO_JPEG)
    assert r.headers["X-Style-Model"] == "stripes/johnson"
    assert post_multipart(johnson, PHOTO_JPEG, arch="fast").headers["X-Style-Model"] == (
        "stripes/fast"
    )
    with pytest.raises(SystemExit, match="DEFAULT_ARCH='turbo': expected one of johnson, fast"):
        make_client(DEFAULT_ARCH="turbo")


def test_arch_errors_say_what_is_valid(client):
    error = assert_error(post_multipart(client, PHOTO_JPEG, arch="turbo"), 400, "invalid_parameter")
    assert "arch must be one of johnson, fast" in error["message"] and "turbo" in error["message"]
    error = assert_error(
        post_multipart(client, PHOTO_JPEG, style="dots", arch="fast"), 404, "arch_unavailable"
    )
    assert "'dots' has no 'fast' model; it has johnson" in error["message"]
    assert "X-Style-Model" not in post_multipart(client, PHOTO_JPEG, arch="turbo").headers


def test_two_models_of_one_style_and_arch_are_refused_at_start(make_client, model_dir, tmp_path):
    for f in ("stripes.onnx", "stripes.fast.onnx", "dots.onnx"):
        (tmp_path / f).write_bytes((model_dir / f).read_bytes())
    (tmp_path / "stripes_copy.onnx").write_bytes((model_dir / "stripes.fast.onnx").read_bytes())
    with pytest.raises(SystemExit) as e:
        make_client(MODEL_DIR=str(tmp_path))
    assert str(e.value).startswith(
        "stripes.fast.onnx and stripes_copy.onnx in " + str(tmp_path) + " are both style "
        "'stripes' in arch 'fast'; a style has at most one model per arch"
    )


def test_an_unreadable_model_is_refused_at_start(make_client, model_dir, tmp_path):
    (tmp_path / "dots.onnx").write_bytes((model_dir / "dots.onnx").read_bytes()[:5000])
    with pytest.raises(SystemExit, match=r"dots\.onnx is not a readable ONNX model"):
        make_client(MODEL_DIR=str(tmp_path))


def test_metadata_is_read_without_onnx_or_a_session(model_dir):
    """The start-up reader agrees with the onnx package on every field."""
    import onnx

    from stylefn.styles.metadata import read_metadata

    for path in sorted(model_dir.glob("*.onnx")):
        expected = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert read_metadata(path) == expected and expected["name"] in ("dots", "stripes")


def session_logs(out: str) -> list[str]:
    """The models whose sessions were built, from the JSON log lines."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line["model"] for line in lines if line["message"] == "session created"]


GRAPH_SESSIONS = ["full resolution: guide", "full resolution: strips"]


def test_sessions_are_lazy_and_concurrent_first_requests_build_one(make_client, capfd):
    capfd.readouterr()
    fresh = make_client()  # a process-like instance of its own, no sessions yet
    assert fresh.get("/styles").status_code == 200  # builds the registry: metadata + default
    registry = fresh.module.instance().registry
    # The default, warmed, and the full-resolution graphs every request runs.
    assert session_logs(capfd.readouterr().out) == ["dots/johnson", *GRAPH_SESSIONS]
    built = {key for key, m in registry.models.items() if m.session is not None}
    assert built == {"dots/johnson"}  # /styles built nothing else

    barrier = threading.Barrier(8)

    def first_request(_):
        barrier.wait()  # all eight at once, before any of them has the session
        return post_multipart(fresh, PHOTO_JPEG, style="stripes", arch="fast", format="png")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(first_request, range(8)))
    assert all(r.status_code == 200 for r in results)
    assert len({r.data for r in results}) == 1
    assert session_logs(capfd.readouterr().out) == ["stripes/fast"]  # once, not eight times
    assert registry.models["stripes/johnson"].session is None  # never asked for


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


def test_real_server_cold_start_warms_the_default_and_builds_the_rest_on_use(
    serve_function, model_dir, tmp_path
):
    """The first response from a fresh process, on styles of both archs: the default style's
    session is built at start, any other on its first request, each once, with correct output.
    (Timings are not asserted: `README` and the report give the measured cold start.)"""
    import onnxruntime as ort

    log = tmp_path / "server.log"
    env = {"MODEL_DIR": str(model_dir), "DEFAULT_STYLE": "stripes"}
    with serve_function(Path(MAIN), log, env) as url:  # returns at the first /healthz answer
        at_start = session_logs(log.read_text())  # warmed before any POST
        assert at_start[-3:] == ["stripes/fast", *GRAPH_SESSIONS]
        png = encode(PHOTO, "PNG")
        answers = {}
        for arch in (None, "johnson", "johnson"):
            query = "?format=png" + (f"&arch={arch}" if arch else "")
            r = requests.post(
                url + query, data=png, headers={"Content-Type": "image/png"}, timeout=30
            )
            assert r.status_code == 200, r.text
            answers[r.headers["X-Style-Model"]] = np.asarray(decoded(r.content))
        built = session_logs(log.read_text())
    assert sorted(answers) == ["stripes/fast", "stripes/johnson"]
    assert built.count("stripes/fast") == 1 and built.count("stripes/johnson") == 1
    assert "dots/johnson" not in built  # never asked for
    for key, got in answers.items():
        name = "stripes.fast.onnx" if key.endswith("/fast") else "stripes.onnx"
        session = ort.InferenceSession(str(model_dir / name), providers=["CPUExecutionProvider"])
        (expected,) = session.run(None, {"image": np.asarray(PHOTO)[None]})
        assert np.abs(got.astype(int) - expected[0]).max() <= 1  # thread count may round apart


def test_default_arch_is_one_the_served_styles_have(model_dir, make_client, tmp_path):
    import shutil

    shutil.copy(model_dir / "dots.onnx", tmp_path / "dots.onnx")  # johnson only
    styles = make_client(MODEL_DIR=str(tmp_path)).get("/styles").json
    assert styles["default_arch"] == "johnson"
    assert styles["styles"][0]["default_arch"] == "johnson"


# --- MODEL_DIR with several folders (a mounted models bucket beside the bundled ones) ---------


def test_model_dir_lists_several_folders(make_client, model_dir, tmp_path):
    bucket, bundled, empty = tmp_path / "bucket", tmp_path / "bundled", tmp_path / "empty"
    for d in (bucket, bundled, empty):
        d.mkdir()
    (bucket / "dots.onnx").write_bytes((model_dir / "dots.onnx").read_bytes())
    for f in ("stripes.onnx", "stripes.fast.onnx"):
        (bundled / f).write_bytes((model_dir / f).read_bytes())
    client = make_client(MODEL_DIR=f"{empty}:{bucket}:{bundled}")
    names = [s["name"] if isinstance(s, dict) else s for s in client.get("/styles").json["styles"]]
    assert sorted(names) == ["dots", "stripes"]


def test_model_dir_folders_may_not_repeat_a_style_and_arch(make_client, model_dir, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "dots.onnx").write_bytes((model_dir / "dots.onnx").read_bytes())
    with pytest.raises(SystemExit) as e:
        make_client(MODEL_DIR=f"{a}:{b}")
    assert str(e.value).startswith(
        f"{a / 'dots.onnx'} and {b / 'dots.onnx'} are both style 'dots' in arch 'johnson'"
    )


def test_model_dir_with_only_empty_folders_is_refused(make_client, tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(SystemExit, match=r"no \*\.onnx style models in"):
        make_client(MODEL_DIR=f"{tmp_path / 'a'}:{tmp_path / 'missing'}")
