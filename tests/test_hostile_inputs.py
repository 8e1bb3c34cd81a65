"""Hostile and malformed requests: each gets its documented JSON error (or is accepted where the
API says so), and the instance keeps serving. Through functions-framework's real app, plus a real
server process for uploads that are cut off or trickled in over a raw socket."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from devtools import bombs
from devtools.images import make_photo
from devtools.server import FunctionServer
from tests.conftest import decoded, encode

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "function" / "main.py")
ERROR_CODES = {
    "invalid_image", "invalid_parameter", "invalid_request", "unknown_style", "not_found",
    "method_not_allowed", "payload_too_large", "image_too_large", "unsupported_media_type",
    "overloaded", "image_too_complex", "deadline_exceeded", "request_timeout", "uri_too_long",
    "headers_too_large", "expectation_failed",
}  # fmt: skip
OPTION_FIELDS = ("style", "strength", "preserve_color", "max_size", "format", "quality")


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def small_client(make_client):
    """Limits small enough to reach with small bodies."""
    return make_client(MAX_REQUEST_BYTES="30000")


# --- building hostile bodies ------------------------------------------------------------------


PHOTO = make_photo(24, 16, seed=3)
JPEG = encode(PHOTO, "JPEG", quality=90)
PNG = encode(PHOTO, "PNG")
B64 = base64.b64encode(JPEG).decode()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_by_hand(width: int, height: int, idat: bytes, bit_depth: int = 8) -> bytes:
    """An RGB PNG with the given header and pixel stream; every CRC correct, so only the
    declared size can give it away."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_bomb(width: int, height: int) -> bytes:
    """A few kB that claim width x height pixels: 64 zero rows, deflated, then nothing."""
    return png_by_hand(width, height, zlib.compress(bytes(3 * width + 1) * 64, 9))


def png_16bit_rgb(width: int, height: int) -> bytes:
    rows = np.zeros((height, width, 3), ">u2")
    rows[..., 0] = np.linspace(0, 65535, width, dtype=np.uint16)  # a red ramp, 16-bit
    rows[..., 2] = 40000
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(height))  # filter 0 per row
    return png_by_hand(width, height, zlib.compress(raw), bit_depth=16)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose frame header (SOF0) is rewritten to claim another size."""
    data = bytearray(JPEG)
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_cut_to_declare(width: int, height: int, size: int = 2048) -> bytes:
    """The first `size` bytes of a real noisy JPEG of width x height, with its end marker put
    back: libjpeg would paint the missing blocks grey, so it decodes to the full size."""
    noise = np.random.default_rng(5).integers(0, 256, (height // 10, width // 10, 3), np.uint8)
    whole = encode(Image.fromarray(noise).resize((width, height)), "JPEG")
    return whole[: size - 2] + b"\xff\xd9"


def jpeg_with_fill(fill: int, before_end: bool) -> bytes:
    """JPEG with `fill` 0xFF fill bytes (legal before any marker) after its start marker or
    before its end marker."""
    pos = len(JPEG) - 2 if before_end else 2
    return JPEG[:pos] + b"\xff" * fill + JPEG[pos:]


def with_png_crc_broken(data: bytes) -> bytes:
    broken = bytearray(data)
    broken[29] ^= 0xFF  # IHDR's CRC (8 signature + 4 length + 4 type + 13 data)
    return bytes(broken)


def jpeg_with_app1_segments(count: int, size: int = 65_000) -> bytes:
    """`count` maximal APP1 segments after SOI: megabytes of metadata before the pixels."""
    segment = b"\xff\xe1" + struct.pack(">H", size + 2) + b"XMPx" + bytes(size - 4)
    return JPEG[:2] + segment * count + JPEG[2:]


def exif_jpeg(payload: int, orientation: int) -> bytes:
    """A JPEG whose single EXIF block is as large as JPEG allows (~64 kB), with an orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x9286] = b"ASCII\0\0\0" + b"x" * payload  # UserComment
    return encode(PHOTO, "JPEG", exif=exif.tobytes())


def exif_png_huge_ifd() -> bytes:
    """A PNG with an eXIf chunk whose IFD claims 65535 (zeroed) entries: ~800 kB to parse."""
    tiff = b"MM\0\x2a\0\0\0\x08" + b"\xff\xff" + bytes(12 * 65535) + bytes(4)
    return encode(PHOTO, "PNG", exif=b"Exif\0\0" + tiff)


def gif_blocks(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split a GIF into its head (header, screen descriptor, global palette) and its frames
    (each: the extensions before it plus the image block)."""
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    head, frames, start = data[:pos], [], pos

    def skip_sub_blocks(p: int) -> int:
        while data[p]:
            p += data[p] + 1
        return p + 1

    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: introducer, label, sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif data[pos] == 0x2C:  # image: descriptor, optional local palette, LZW sub-blocks
            local = data[pos + 9]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)
            frames.append(data[start:pos])
            start = pos
        else:
            raise ValueError(f"unexpected GIF block {data[pos]:#x}")
    return head, frames


def animated_gif(size: int, frames: int) -> bytes:
    """A white first frame, then `frames - 1` black ones, all full size: Pillow's encoder makes
    two frames, and the second is repeated by hand (a few hundred bytes each)."""
    white, black = Image.new("L", (size, size), 255), Image.new("L", (size, size), 0)
    two = encode(white, "GIF", save_all=True, append_images=[black], optimize=False, duration=20)
    head, (first, second) = gif_blocks(two)
    return head + first + second * (frames - 1) + b";"


def two_images_named_image() -> bytes:
    part = (b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + JPEG + b"\r\n")  # fmt: skip
    return part * 2 + b"--xx--\r\n"


ANIMATED_FRAMES = 2000
ANIMATED_GIF = animated_gif(512, ANIMATED_FRAMES)


# --- senders ----------------------------------------------------------------------------------

Send = Callable  # (client) -> response


def raw(body: bytes, content_type: str | None, query: str = "") -> Send:
    if content_type is None:  # no Content-Type header at all
        return lambda c: c.post("/" + query, data=body)
    return lambda c: c.post("/" + query, data=body, content_type=content_type)


def multipart(files: dict[str, bytes] | None = None, **fields: str) -> Send:
    files = {"image": JPEG} if files is None else files
    return lambda c: c.post(
        "/",
        data={**{k: (io.BytesIO(v), f"{k}.jpg") for k, v in files.items()}, **fields},
        content_type="multipart/form-data",
    )


def as_json(body: object) -> Send:
    return lambda c: c.post("/", json=body)


def json_bytes(body: bytes) -> Send:
    return lambda c: c.post("/", data=body, content_type="application/json")


def method(verb: str, path: str) -> Send:
    return lambda c: c.open(path, method=verb, data=JPEG, content_type="image/jpeg")


def assert_error(r, status: int, code: str) -> dict:
    """The documented error shape, nothing about the server's insides, and the usual headers."""
    assert r.status_code == status, r.data[:300]
    assert r.mimetype == "application/json"
    error = r.json["error"]
    assert error["code"] == code
    assert len(error["message"]) > 20  # says what to do, not just "bad request"
    text = r.get_data(as_text=True)
    for leak in ("Traceback", 'File "', "site-packages", str(ROOT)):
        assert leak not in text
    assert re.search(r"total;dur=\d", r.headers["Server-Timing"])
    assert r.headers["X-Request-Id"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    return error


def assert_still_serving(c) -> None:
    r = c.post("/?format=png", data=JPEG, content_type="image/jpeg")
    assert r.status_code == 200, r.data[:300]
    assert decoded(r.data).size == PHOTO.size


def server_timing(r, name: str) -> float:
    return float(re.search(rf"{name};dur=([\d.]+)", r.headers["Server-Timing"]).group(1))


# --- the table of hostile requests ------------------------------------------------------------

RNG = np.random.default_rng(8)
RANDOM = RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes()
BAD_IMAGE = [
    # truncated, empty, random
    ("jpeg-truncated-half", raw(JPEG[: len(JPEG) // 2], "image/jpeg")),
    ("jpeg-header-only", raw(JPEG[:200], "image/jpeg")),
    ("jpeg-soi-only", raw(b"\xff\xd8", "image/jpeg")),
    ("png-truncated-half", raw(PNG[: len(PNG) // 2], "image/png")),
    ("png-signature-and-ihdr-only", raw(PNG[:33], "image/png")),
    ("png-bad-crc", raw(with_png_crc_broken(PNG), "image/png")),
    ("gif-truncated", raw(ANIMATED_GIF[:40], "image/gif")),
    ("webp-truncated", raw(encode(PHOTO, "WEBP")[:30], "image/webp")),
    ("zero-bytes-raw", raw(b"", "image/jpeg")),
    ("zero-bytes-multipart", multipart({"image": b""})),
    ("zero-bytes-json-image", as_json({"image": ""})),
    ("truncated-jpeg-multipart", multipart({"image": JPEG[:100]})),
    ("truncated-png-json", as_json({"image": base64.b64encode(PNG[:60]).decode()})),
    # decodes to 36 MP of grey (+344 MiB) unless refused from its size
    (
        "jpeg-2kB-declaring-6000x6000-end-marker-restored",
        raw(jpeg_cut_to_declare(6000, 6000), "image/jpeg"),
    ),
    *[
        (f"random-bytes-as-{t.split('/')[1]}", raw(RANDOM, t))
        for t in (
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/bmp",
            "image/tiff",
            "application/octet-stream",
        )
    ],
    ("random-bytes-after-png-signature", raw(PNG_SIGNATURE + RANDOM, "image/png")),
    ("random-bytes-after-jpeg-soi", raw(b"\xff\xd8\xff" + RANDOM, "image/jpeg")),
    # the content type does not match the bytes (images are sniffed, non-images refused)
    ("json-bytes-as-jpeg", raw(json.dumps({"image": B64}).encode(), "image/jpeg")),
    ("html-as-png", raw(b"<html><body>hi</body></html>", "image/png")),
    ("svg-as-png", raw(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/png")),
    ("pdf-as-jpeg", raw(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "image/jpeg")),
    ("ico-as-png", raw(encode(PHOTO, "ICO"), "image/png")),  # a real image, not an accepted one
    # JSON with a broken "image"
    ("json-base64-garbage", as_json({"image": "@@@@ not base64 ####"})),
    ("json-data-uri-garbage", as_json({"image": "data:image/png;base64,!!!!"})),
    ("json-base64-unicode", as_json({"image": "ÿþ星夜" * 10})),
    ("json-base64-of-text", as_json({"image": base64.b64encode(b"hello world").decode()})),
]
BAD_PARAMETER = [
    ("json-missing-image", as_json({"style": "dots"})),
    ("json-empty-object", as_json({})),
    ("json-image-null", as_json({"image": None})),
    *[
        (f"json-image-{type(v).__name__}", as_json({"image": v}))
        for v in (12, 1.5, True, [B64], {"data": B64})
    ],
    ("json-nested-options", as_json({"image": B64, "options": {"style": "dots"}})),
    ("json-unknown-field", as_json({"image": B64, "colour": "red"})),
    *[
        (f"json-style-{type(v).__name__}", as_json({"image": B64, "style": v}))
        for v in (12, ["dots"], {"name": "dots"}, None, True)
    ],
    ("multipart-no-file-field", multipart({}, style="dots")),
    ("multipart-file-in-other-field", multipart({"file": JPEG})),
    (
        "multipart-image-as-text-field",
        lambda c: c.post("/", data={"image": B64}, content_type="multipart/form-data"),
    ),
    ("multipart-two-files", multipart({"image": JPEG, "image2": JPEG})),
    (
        "multipart-two-files-both-named-image",
        raw(two_images_named_image(), "multipart/form-data; boundary=xx"),
    ),
    ("multipart-without-boundary", raw(b"--x\r\n\r\n", "multipart/form-data")),
    ("raw-unknown-query-field", raw(JPEG, "image/jpeg", "?image=x")),
]
BAD_REQUEST = [
    ("json-not-an-object-list", json_bytes(b"[1, 2]")),
    ("json-not-an-object-string", json_bytes(b'"' + B64.encode() + b'"')),
    ("json-not-an-object-null", json_bytes(b"null")),
    ("json-truncated", json_bytes(b'{"image": "' + B64[:20].encode())),
    ("json-empty-body", json_bytes(b"")),
    ("json-invalid-utf8", json_bytes(b'{"image": "\xff\xfe"}')),
    ("json-deeply-nested", json_bytes(b"[" * 100_000 + b"]" * 100_000)),
    ("json-deeply-nested-field", json_bytes(b'{"image": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")),
    (
        "json-integer-5000-digits",
        json_bytes(b'{"image": "' + B64.encode() + b'", "quality": 1' + b"0" * 5000 + b"}"),
    ),
    ("image-bytes-as-json", raw(JPEG, "application/json")),
    # werkzeug's router refuses an upgrade to a WebSocket before the function runs (was HTML)
    (
        "websocket-upgrade",
        lambda c: c.get(
            "/",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        ),
    ),
]
STYLE_NAMES = [
    "../../etc/passwd", "..\\..\\windows\\win.ini", "/etc/passwd", "dots/../stripes",
    "dots.onnx", "./dots", "%2e%2e%2fdots", "dots\x00", "星夜 🌌", "a" * 10_240,
]  # fmt: skip
UNKNOWN_STYLE = [
    *[(f"style-{channel}-{i}", send)
      for i, name in enumerate(STYLE_NAMES)
      for channel, send in (("json", as_json({"image": B64, "style": name})),
                            ("multipart", multipart(style=name)),
                            ("query", raw(JPEG, "image/jpeg", "?" + urllib.parse.urlencode({"style": name}))))]
]  # fmt: skip
UNSUPPORTED = [
    ("no-content-type", raw(JPEG, None)),
    ("text-plain", raw(JPEG, "text/plain")),
    ("form-urlencoded", raw(b"image=abc", "application/x-www-form-urlencoded")),
    ("svg-content-type", raw(b"<svg/>", "image/svg+xml")),
    ("heic-content-type", raw(JPEG, "image/heic")),
    ("garbage-content-type", raw(JPEG, "\x00\xff;;==")),
]
WRONG_METHOD = [
    (f"{verb}-{path}", method(verb, path))
    for verb, path in (("GET", "/stylize"), ("PUT", "/"), ("PATCH", "/stylize"), ("DELETE", "/"),
                       ("POST", "/styles"), ("PUT", "/healthz"), ("DELETE", "/styles"))
]  # fmt: skip
NOT_FOUND = [
    (f"path-{i}", method("POST", path))
    for i, path in enumerate(["/models/dots.onnx", "/../etc/passwd", "/%2e%2e/etc/passwd",
                              "/stylize/extra", "/function/main.py",
                              # answered by functions-framework before our function runs:
                              "/robots.txt", "/favicon.ico", "/stylize%0A"])
]  # fmt: skip

# Decoder bombs (issue #15): small uploads whose decoding costs far out of proportion to their
# size, refused from their structure before Pillow sees them (function/stylefn/imaging/checks.py).
TOO_COMPLEX = [
    ("jpeg-progressive-scans-x1000-147kB", raw(bombs.progressive_scan_bomb(1000), "image/jpeg")),  # 8 s to decode
    ("jpeg-progressive-38-scans-16MP", raw(bombs.progressive_scan_bomb(28), "image/jpeg")),
    ("bmp-rle8-40MP-26kB", raw(bombs.bmp_rle8(6400, 6250), "image/bmp")),  # 3.5 s, in Python
    ("bmp-rle8-5MP", multipart({"image": bombs.bmp_rle8(2500, 2000)})),
    ("jpeg-app1-flood-2MB", raw(bombs.jpeg_app_flood(2_000_000), "image/jpeg")),
    ("gif-comment-flood-2MB", as_json({"image": base64.b64encode(bombs.gif_comment_flood(2_000_000)).decode()})),
    ("png-chunk-flood-100k", raw(bombs.png_chunk_flood(100_000), "image/png")),
    ("tiff-5000-tags", raw(bombs.tiff_tag_flood(5000), "image/tiff")),
    ("tiff-1M-one-row-strips", raw(bombs.tiff_strip_flood(1_000_000), "image/tiff")),  # 4.7 s
    ("jpeg-19MB-fill-after-start", raw(jpeg_with_fill(19_000_000, before_end=False), "image/jpeg")),  # 49 s
    ("jpeg-19MB-fill-before-end", raw(jpeg_with_fill(19_000_000, before_end=True), "image/jpeg")),  # 39 s
]  # fmt: skip

HOSTILE = [
    *[pytest.param(send, 400, "invalid_image", id=name) for name, send in BAD_IMAGE],
    *[pytest.param(send, 400, "invalid_parameter", id=name) for name, send in BAD_PARAMETER],
    *[pytest.param(send, 400, "invalid_request", id=name) for name, send in BAD_REQUEST],
    *[pytest.param(send, 404, "unknown_style", id=name) for name, send in UNKNOWN_STYLE],
    *[pytest.param(send, 404, "not_found", id=name) for name, send in NOT_FOUND],
    *[pytest.param(send, 405, "method_not_allowed", id=name) for name, send in WRONG_METHOD],
    *[pytest.param(send, 415, "unsupported_media_type", id=name) for name, send in UNSUPPORTED],
    pytest.param(raw(png_bomb(50_000, 50_000), "image/png"), 413, "image_too_large", id="png-bomb-50000x50000"),
    pytest.param(raw(png_bomb(10_000, 5_000), "image/png"), 413, "image_too_large", id="png-over-max-pixels"),
    pytest.param(raw(jpeg_declaring(65_000, 65_000), "image/jpeg"), 413, "image_too_large", id="jpeg-declaring-65000x65000"),
    *[pytest.param(send, 422, "image_too_complex", id=name) for name, send in TOO_COMPLEX],
]  # fmt: skip


@pytest.mark.parametrize("send,status,code", HOSTILE)
def test_hostile_request_gets_its_error_and_the_next_request_works(client, send, status, code):
    t0 = time.perf_counter()
    error = assert_error(send(client), status, code)
    assert time.perf_counter() - t0 < 5  # refused from headers and sizes, never a slow decode
    if code == "unknown_style":
        assert "dots, stripes" in error["message"]
        assert len(error["message"]) < 300  # a 10 kB name is not echoed back
    if code == "image_too_large":
        assert "pixels" in error["message"] and "40,000,000" in error["message"]
    assert_still_serving(client)


def test_wrong_methods_say_what_is_allowed(client):
    r = client.put("/stylize", data=JPEG, content_type="image/jpeg")
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]
    assert "GET" in client.post("/healthz").headers["Allow"]


# --- absurd option values: every channel, every type ------------------------------------------

ABSURD_VALUES = {
    "max_size": [-1, 0, 65_001, 10**12, 10**400, 1.5, True, "abc", "nan", "inf", "1e309", "", [], None],
    "quality": [-5, 0, 101, 1e308, 10**400, 90.5, False, "ninety", "NaN", "", {}, None],
    "strength": [-0.1, 1.0001, math.nan, math.inf, -math.inf, 10**400, "1e400", True, "strong", [0.5], None],
    "preserve_color": ["maybe", 2, -1, 0.5, [], {}, None],
    "format": ["gif", "", "../png", "png\x00", ["png"], 1, None],
}  # fmt: skip
ABSURD_TEXT = {  # what a query string or form field can carry
    name: [v for v in values if isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300)]
    for name, values in ABSURD_VALUES.items()
}  # fmt: skip


@pytest.mark.parametrize(
    "field,value",
    [pytest.param(f, v, id=f"{f}={str(v)[:12]!r}") for f, vs in ABSURD_VALUES.items() for v in vs],
)
def test_absurd_json_values_are_refused(client, field, value):
    error = assert_error(
        client.post("/", json={"image": B64, field: value}), 400, "invalid_parameter"
    )
    assert field in error["message"]
    assert len(error["message"]) < 300  # huge values are cut, not echoed
    assert_still_serving(client)


@pytest.mark.parametrize(
    "field,value",
    [pytest.param(f, v, id=f"{f}={str(v)[:12]!r}") for f, vs in ABSURD_TEXT.items() for v in vs],
)
def test_absurd_query_and_form_values_are_refused(client, field, value):
    query = "?" + urllib.parse.urlencode({field: str(value)})
    assert_error(raw(JPEG, "image/jpeg", query)(client), 400, "invalid_parameter")
    assert_error(multipart(**{field: str(value)})(client), 400, "invalid_parameter")
    assert_still_serving(client)


# --- too large bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(raw(RANDOM * 10, "image/jpeg"), id="raw"),
        pytest.param(multipart({"image": RANDOM * 10}), id="multipart"),
        pytest.param(as_json({"image": base64.b64encode(RANDOM * 10).decode()}), id="json"),
        pytest.param(raw(RANDOM * 10, "text/plain"), id="before-the-content-type"),
    ],
)
def test_oversized_bodies_are_refused(small_client, send):
    error = assert_error(send(small_client), 413, "payload_too_large")
    assert "MAX_REQUEST_BYTES" in error["message"]
    assert_still_serving(small_client)


# --- images that look hostile but are accepted ------------------------------------------------

ACCEPTED = [
    ("jpeg-with-some-fill-bytes", raw(jpeg_with_fill(1000, before_end=True), "image/jpeg"), (24, 16)),
    ("jpeg-sent-as-png", raw(JPEG, "image/png"), (24, 16)),  # the bytes are sniffed
    ("png-sent-as-jpeg", raw(PNG, "image/jpeg"), (24, 16)),
    ("jpeg-as-octet-stream", raw(JPEG, "application/octet-stream"), (24, 16)),
    ("1x1", raw(encode(Image.new("RGB", (1, 1), "red"), "PNG"), "image/png"), (1, 1)),
    ("1x300", raw(encode(make_photo(1, 300), "PNG"), "image/png"), (1, 300)),
    ("300x1", raw(encode(make_photo(300, 1), "PNG"), "image/png"), (300, 1)),
    ("2x3-jpeg", raw(encode(make_photo(2, 3), "JPEG"), "image/jpeg"), (2, 3)),
    ("png-16bit-grey", raw(encode(Image.fromarray(np.asarray(PHOTO.convert("L")).astype(np.uint16) * 257), "PNG"), "image/png"), (24, 16)),
    ("png-16bit-rgb", raw(png_16bit_rgb(24, 16), "image/png"), (24, 16)),
    ("cmyk-jpeg", raw(encode(PHOTO.convert("CMYK"), "JPEG"), "image/jpeg"), (24, 16)),
    ("cmyk-tiff", raw(encode(PHOTO.convert("CMYK"), "TIFF"), "image/tiff"), (24, 16)),
    ("palette-png", raw(encode(PHOTO.quantize(16), "PNG"), "image/png"), (24, 16)),
    ("palette-png-transparency", raw(encode(PHOTO.quantize(16), "PNG", transparency=0), "image/png"), (24, 16)),
    ("exif-64kB-rotated", raw(exif_jpeg(60_000, orientation=6), "image/jpeg"), (16, 24)),  # still applied
    ("exif-png-65535-entries", raw(exif_png_huge_ifd(), "image/png"), (24, 16)),
    ("jpeg-200-app1-segments-13MB", raw(jpeg_with_app1_segments(200), "image/jpeg"), (24, 16)),
    ("jpeg-progressive", raw(encode(PHOTO, "JPEG", progressive=True), "image/jpeg"), (24, 16)),
    ("jpeg-progressive-37-scans-16MP", raw(bombs.progressive_scan_bomb(27), "image/jpeg", "?max_size=64"), (64, 64)),  # the limit, exactly
    ("bmp-rle8-4MP", raw(bombs.bmp_rle8(2048, 2048), "image/bmp", "?max_size=64"), (64, 64)),
    ("tiff-300-broken-tags", raw(bombs.tiff_broken_tags(300), "image/tiff"), (16, 16)),
    ("tiff-65536-one-row-strips", raw(bombs.tiff_strip_flood(65536), "image/tiff", "?max_size=64"), (1, 64)),  # the limit
    ("empty-style-is-default", raw(JPEG, "image/jpeg", "?style=%20"), (24, 16)),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.filterwarnings("ignore:Tag data larger than file")  # the server filters them out
@pytest.mark.parametrize(
    "send,size", [pytest.param(send, size, id=name) for name, send, size in ACCEPTED]
)
def test_odd_but_valid_images_are_accepted(client, send, size):
    t0 = time.perf_counter()
    r = send(client)
    assert r.status_code == 200, r.data[:300]
    assert decoded(r.data).size == size
    assert time.perf_counter() - t0 < 10  # metadata is bounded work, not a slow path
    assert_still_serving(client)


def test_animated_gif_uses_the_first_frame_without_decoding_the_rest(client):
    # 2000 full 512x512 frames: decoding them all takes seconds; the first alone, milliseconds.
    assert len(ANIMATED_GIF) < 5_000_000  # far under MAX_REQUEST_BYTES: the frames are cheap
    assert Image.open(io.BytesIO(ANIMATED_GIF)).n_frames == ANIMATED_FRAMES
    r = client.post(
        "/?max_size=64&strength=0&format=png", data=ANIMATED_GIF, content_type="image/gif"
    )
    assert r.status_code == 200, r.data[:300]
    out = np.asarray(decoded(r.data).convert("L"))
    assert out.shape == (64, 64) and out.min() >= 250  # the white first frame, not a black one
    assert server_timing(r, "decode") < 500
    assert_still_serving(client)


# --- a real server: uploads cut off or trickled over a raw socket -----------------------------


@pytest.fixture(scope="module")
def live(model_dir):
    with FunctionServer(model_dir) as server:
        yield server


def http_head(length: int | str, content_type: str = "image/jpeg") -> bytes:
    return (
        f"POST /stylize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def assert_live_json_error(status: int, headers: dict, body: bytes, expected: int) -> str:
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/json"
    assert "total;dur=" in headers["server-timing"]
    assert b"Traceback" not in body
    return json.loads(body)["error"]["code"]


def assert_live_serving(server: FunctionServer, workers: list[int]) -> None:
    r = requests.post(server.url, data=JPEG, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert r.status_code == 200 and decoded(r.content).size == PHOTO.size
    assert server.worker_pids() == workers  # the same worker: nothing crashed or was replaced


def test_upload_cut_off_by_a_disconnect(live):
    workers = live.worker_pids()
    for head, body in [
        (http_head(50_000), JPEG[:500]),  # fewer bytes than Content-Length, then gone
        (http_head(50_000, "multipart/form-data; boundary=xx"), b"--xx\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n" + JPEG[:300]),
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le", b""),  # inside the headers
    ]:  # fmt: skip
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(head + body)
    assert_live_serving(live, workers)


@pytest.mark.parametrize(
    "content_type,prefix,codes",
    [
        ("image/jpeg", JPEG[:500], {"invalid_image"}),  # the body ends early: a truncated image
        ("application/json", b'{"image": "' + B64[:40].encode(), {"invalid_request"}),
        # werkzeug drops the unfinished part, so this reads as a missing "image" field
        ("multipart/form-data; boundary=xx", b'--xx\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + JPEG[:300], {"invalid_parameter", "invalid_request"}),
    ],
)  # fmt: skip
def test_upload_cut_off_but_waiting_for_the_answer(live, content_type, prefix, codes):
    workers = live.worker_pids()
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(http_head(50_000, content_type) + prefix)
        sock.shutdown(socket.SHUT_WR)  # no more bytes, but the answer can still come back
        assert assert_live_json_error(*read_response(sock), expected=400) in codes
    assert_live_serving(live, workers)


def test_declared_length_over_the_limit_is_refused_before_the_body(live):
    workers = live.worker_pids()
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(http_head(10**12))  # a terabyte announced, nothing sent
        t0 = time.perf_counter()
        status, headers, body = read_response(sock)
    assert assert_live_json_error(status, headers, body, 413) == "payload_too_large"
    assert time.perf_counter() - t0 < 5
    assert_live_serving(live, workers)


def test_a_trickled_upload_does_not_block_other_requests(live):
    workers = live.worker_pids()
    answer: dict = {}
    chunks = [JPEG[i : i + 64] for i in range(0, len(JPEG), 64)]
    delay = 3.0 / len(chunks)  # the whole upload takes ~3 s

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
            sock.sendall(http_head(len(JPEG)))
            for chunk in chunks:
                sock.sendall(chunk)
                time.sleep(delay)
            answer["response"] = read_response(sock)

    thread = threading.Thread(target=trickle)
    t0 = time.perf_counter()
    thread.start()
    time.sleep(0.3)  # the trickle has started and holds a server thread
    assert_live_serving(live, workers)
    assert time.perf_counter() - t0 < 2.5, "a normal request waited for the slow upload"
    thread.join(timeout=30)
    status, headers, body = answer["response"]
    assert status == 200 and headers["content-type"] == "image/jpeg"  # slow but complete: served
    assert decoded(body).size == PHOTO.size
    assert_live_serving(live, workers)


# --- property-based fuzzing of request parsing ------------------------------------------------

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TINY_JPEG = encode(make_photo(8, 6, seed=1), "JPEG")
CONTENT_TYPES = [
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/svg+xml", "image/x-anything",
    "application/json", "application/octet-stream", "multipart/form-data",
    "multipart/form-data; boundary=zz", "text/plain", "application/x-www-form-urlencoded", "",
]  # fmt: skip
texts = st.text(max_size=30)
header_texts = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)  # latin-1
field_names = st.one_of(st.sampled_from(["image", *OPTION_FIELDS]), st.text(max_size=12))
# Valid values now and then, so the fuzzing also reaches decode, inference and encode.
VALID_VALUES = ["dots", "stripes", "png", "jpeg", "webp", "jpg", True, False, 0, 0.5, 1, 8, 64, 100]
valid_texts = st.sampled_from([str(v).lower() for v in VALID_VALUES])
valid_options = st.fixed_dictionaries(
    {},
    optional={
        "style": st.sampled_from(["dots", "stripes", " dots ", ""]),
        "strength": st.floats(0, 1),
        "preserve_color": st.one_of(st.booleans(), st.sampled_from(["yes", "off", 1, 0])),
        "max_size": st.integers(1, 2048),
        "format": st.sampled_from(["png", "jpeg", "webp", "JPG", " png "]),
        "quality": st.one_of(st.integers(1, 100), st.just(50.0)),
    },
)
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300),
        st.floats(allow_nan=True, allow_infinity=True), texts,
        st.sampled_from(["dots", "stripes", "png", "jpeg", "1", "0.5", "true", "nan", B64]),
    ),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(texts, children, max_size=3)),
    max_leaves=8,
)  # fmt: skip


def mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    out = bytearray(data)
    for p, v in zip(positions, values, strict=False):
        out[p % len(out)] = v
    return bytes(out)


bodies = st.one_of(
    st.binary(max_size=2048),
    st.just(TINY_JPEG),
    st.builds(lambda n: TINY_JPEG[:n], st.integers(0, len(TINY_JPEG))),
    st.builds(
        mutate,
        st.just(TINY_JPEG),
        st.lists(st.integers(0, 10**6), max_size=8),
        st.lists(st.integers(0, 255), max_size=8),
    ),
    st.builds(lambda obj: json.dumps(obj).encode(), json_values),
)


def assert_no_server_error(r, verb: str = "POST") -> None:
    event(f"status {r.status_code}")  # --hypothesis-show-statistics: how often each is reached
    assert r.status_code < 500, r.data[:300]
    assert "Server-Timing" in r.headers
    if r.status_code >= 400 and verb != "HEAD":
        assert r.mimetype == "application/json", r.data[:300]
        assert r.json["error"]["code"] in ERROR_CODES
        assert "Traceback" not in r.get_data(as_text=True)


@FUZZ
@given(
    verb=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/", "/stylize"]),
        st.sampled_from(["/styles", "/healthz", "/styles/dots/thumbnail.jpg"]),
        st.text(max_size=20),
    ),
    content_type=st.one_of(st.sampled_from(CONTENT_TYPES), header_texts),
    body=bodies,
    query=st.dictionaries(field_names, texts, max_size=4),
)
def test_fuzz_raw_requests_never_500(client, verb, path, content_type, body, query):
    url = "/" + urllib.parse.quote(path.lstrip("/"), safe="/")
    if query:
        url += "?" + urllib.parse.urlencode(query)
    r = client.open(url, method=verb, data=body, headers={"Content-Type": content_type})
    assert_no_server_error(r, verb)


@FUZZ
@given(
    body=st.one_of(
        st.dictionaries(field_names, json_values, max_size=6),
        st.builds(lambda d: {"image": B64, **d}, valid_options),
        st.builds(
            lambda d: {"image": B64, **d},
            st.dictionaries(field_names, st.one_of(st.sampled_from(VALID_VALUES), json_values), max_size=4),
        ),
        json_values,
    ),
    query=st.dictionaries(field_names, texts, max_size=2),
)  # fmt: skip
def test_fuzz_json_bodies_never_500(client, body, query):
    url = "/?" + urllib.parse.urlencode(query) if query else "/"
    r = client.post(url, data=json.dumps(body), content_type="application/json")
    assert_no_server_error(r)
    if r.status_code == 200:
        assert decoded(base64.b64decode(r.json["image"])).size == (
            r.json["width"],
            r.json["height"],
        )


@settings(FUZZ, max_examples=60)
@given(options=valid_options)
def test_fuzz_valid_option_combinations_succeed(client, options):
    r = client.post("/", json={"image": B64, **options})
    assert r.status_code == 200, r.data[:300]
    w, h = PHOTO.size
    side = options.get("max_size", 1024)
    if max(w, h) > side:  # shrunk to fit, the aspect ratio kept (rounded)
        w, h = max(1, round(w * side / max(w, h))), max(1, round(h * side / max(w, h)))
    assert (r.json["width"], r.json["height"]) == (w, h)
    img = decoded(base64.b64decode(r.json["image"]))
    assert img.size == (w, h) and img.format == r.json["format"].upper()


@FUZZ
@given(
    fields=st.dictionaries(field_names, st.one_of(valid_texts, texts), max_size=4),
    file_fields=st.one_of(
        st.just(["image"]),
        st.lists(st.sampled_from(["image", "file", "image2", ""]), max_size=2, unique=True),
    ),
    body=st.one_of(st.just(TINY_JPEG), bodies),
)
def test_fuzz_multipart_never_500(client, fields, file_fields, body):
    data = {**fields, **{name: (io.BytesIO(body), "upload.bin") for name in file_fields}}
    r = client.post("/", data=data, content_type="multipart/form-data")
    assert_no_server_error(r)


# --- the structure checks pass what encoders write ---------------------------------------------

ENCODED = [
    ("JPEG", {"quality": 90}), ("JPEG", {"progressive": True, "optimize": True}),
    ("JPEG", {"progressive": True, "subsampling": 0}), ("PNG", {"optimize": True}),
    ("PNG", {"compress_level": 0}), ("GIF", {}), ("TIFF", {"compression": "tiff_lzw"}),
    ("TIFF", {"compression": "tiff_deflate"}), ("BMP", {}), ("WEBP", {"lossless": True}),
]  # fmt: skip


@pytest.mark.parametrize("fmt,options", ENCODED, ids=[f"{f}-{o}" for f, o in ENCODED])
def test_every_file_pillow_writes_passes_the_structure_checks(fmt, options):
    from stylefn.imaging.checks import check_structure

    photo = make_photo(1200, 800, seed=4)
    check_structure(encode(photo.convert("P") if fmt == "GIF" else photo, fmt, **options))
    check_structure(encode(photo.convert("L"), fmt, **options))


def test_broken_tiff_tags_write_no_warning_per_tag(live):
    # Pillow warned once per tag, each with its own text: 5,000 broken tags wrote 10,000 lines
    r = requests.post(live.url, data=bombs.tiff_broken_tags(300), headers={"Content-Type": "image/tiff"}, timeout=30)  # fmt: skip
    assert r.status_code == 200
    time.sleep(0.3)
    assert "Skipping tag" not in live.log_tail(100_000)
