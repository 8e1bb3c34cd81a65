"""A photo painted like a painting the request brings (issue #31): the WCT transform itself,
the cache of analysed paintings, and `style_image` through the real app with the bundled
arbitrary-style graphs (function/graphs/arbitrary)."""

from __future__ import annotations

import base64
import io
import struct
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from devtools.images import make_photo
from devtools.videos import encode_clip, pan_frames
from tests.conftest import FUNCTION_DIR, decoded, encode

sys.path.insert(0, str(FUNCTION_DIR))
from stylefn.arbitrary.cache import PaintingCache, painting_key
from stylefn.arbitrary.painter import AnalysedPainting
from stylefn.arbitrary.swap import MAX_CANDIDATES, Patches, swap
from stylefn.arbitrary.wct import Moments, neighbourhoods, transfer, transfer_pixels

PHOTO = make_photo(160, 120, seed=3)
PHOTO_JPEG = encode(PHOTO, "JPEG", quality=92)


def warm_painting(size: int = 128, seed: int = 0) -> Image.Image:
    """Reds and oranges in diagonal strokes: a palette the photo (blues, greys) does not have."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    stroke = np.sin((xx + yy) / 4 + rng.normal(0, 0.3, (size, size)))
    rgb = np.stack([200 + 50 * stroke, 90 + 60 * stroke, 30 + 20 * stroke], -1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


PAINTING = warm_painting()
PAINTING_PNG = encode(PAINTING, "PNG")


def mean_rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), np.float64).reshape(-1, 3).mean(0)


def distance_to_painting(img: Image.Image) -> float:
    return float(np.linalg.norm(mean_rgb(img) - mean_rgb(PAINTING)))


def luminance(img: Image.Image, blur: float = 0.0) -> np.ndarray:
    """Flat; `blur` (a Gaussian radius) leaves the shapes and takes out the painting's marks."""
    grey = img.convert("L")
    return np.asarray(
        grey.filter(ImageFilter.GaussianBlur(blur)) if blur else grey, np.float64
    ).ravel()


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


def send(client, photo: bytes = PHOTO_JPEG, painting: bytes = PAINTING_PNG, **fields):
    files = {"image": (io.BytesIO(photo), "photo.jpg"), "style_image": (io.BytesIO(painting), "p")}
    return client.post("/", data={**files, **fields}, content_type="multipart/form-data")


def assert_image_error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.data[:300]
    error = r.get_json()["error"]
    assert error["code"] == code
    assert "Traceback" not in r.get_data(as_text=True)
    return str(error["message"])


# --- the transform ----------------------------------------------------------------------------


def test_transfer_gives_the_features_the_style_s_mean_and_covariance():
    rng = np.random.default_rng(0)
    content = rng.normal(0, 1, (8, 12, 10)) @ np.eye(10) + 3.0  # (C, H, W)
    style = rng.normal(0, 1, (8, 500)) * np.arange(1, 9)[:, None] + 5.0
    style[1] += 0.8 * style[0]  # correlated channels: the covariance, not just the variances
    moved = transfer(content.astype(np.float32), Moments.of(style)).reshape(8, -1)
    assert np.isfinite(moved).all()
    np.testing.assert_allclose(moved.mean(1), style.mean(1), atol=1e-3)
    np.testing.assert_allclose(np.cov(moved), np.cov(style), rtol=2e-3, atol=2e-3)


def test_strength_blends_with_the_original_features():
    rng = np.random.default_rng(1)
    content = rng.normal(0, 1, (4, 6, 6)).astype(np.float32)
    style = Moments.of(rng.normal(2, 3, (4, 200)))
    np.testing.assert_allclose(transfer(content, style, 0.0), content, atol=1e-6)
    half = transfer(content, style, 0.5)
    np.testing.assert_allclose(half, (content + transfer(content, style, 1.0)) / 2, atol=1e-5)


@pytest.mark.parametrize("channels", [8, 40])  # fewer and more than the projection's 16
def test_the_swap_finds_each_painting_patch_itself(channels):
    rng = np.random.default_rng(channels)
    painting = rng.normal(size=(channels, 12, 14)).astype(np.float32)
    out = swap(painting, Patches.of(painting))
    assert out.shape == painting.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, painting, atol=1e-2)  # float16 storage


def test_the_swap_gives_only_the_painting_s_features():
    rng = np.random.default_rng(1)
    painting = rng.normal(size=(24, 100, 90)).astype(np.float32)  # 9,000 > MAX_CANDIDATES
    patches = Patches.of(painting)
    assert patches.values.shape[1] <= MAX_CANDIDATES
    out = swap(rng.normal(size=(24, 33, 17)).astype(np.float32), patches)
    chosen = {tuple(v) for v in out.reshape(24, -1).T.astype(np.float16)}
    assert chosen <= {tuple(v) for v in patches.values.T}


def test_the_swap_of_flat_features_is_finite():
    flat = np.zeros((16, 8, 8), np.float32)
    assert np.isfinite(swap(flat, Patches.of(flat))).all()
    assert np.isfinite(swap(np.ones((16, 5, 5), np.float32), Patches.of(flat))).all()


def test_the_pixel_step_is_the_centre_of_the_transformed_neighbourhoods():
    """transfer_pixels' nine shifted products against the transform of every neighbourhood,
    unfolded, whose centre pixel it must equal."""
    photo = np.asarray(make_photo(40, 30, seed=1))
    style = Moments.of(neighbourhoods(np.asarray(PAINTING)), 1e-3)
    own = Moments.of(neighbourhoods(photo, 2), 1e-3)  # as transfer_pixels measures the photo
    every = neighbourhoods(photo)  # (27, H*W)
    centre = (style.colour @ own.white @ (every - own.mean) + style.mean)[12:15]
    expected = np.clip((centre.T.reshape(30, 40, 3) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    got = transfer_pixels(photo, [(style, 1.0)])
    assert np.abs(got.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("flat", ["painting", "photo"])
def test_a_flat_painting_or_photo_gives_no_nan(flat):
    grey = np.full((32, 32, 3), 128, np.uint8)
    photo, painting = (grey, np.asarray(PAINTING)) if flat == "photo" else (
        np.asarray(make_photo(32, 32)), grey)  # fmt: skip
    out = transfer_pixels(photo, [(Moments.of(neighbourhoods(painting), 1e-3), 1.0)])
    assert out.shape == photo.shape and out.dtype == np.uint8
    features = (
        np.zeros((6, 4, 4), np.float32) if flat == "photo" else np.ones((6, 4, 4), np.float32)
    )
    assert np.isfinite(transfer(features, Moments.of(np.zeros((6, 20))))).all()


def test_the_cache_keeps_the_most_recently_used_paintings():
    cache = PaintingCache(2)
    made: list[str] = []

    def analyse(name: str):
        def run() -> AnalysedPainting:
            made.append(name)
            return AnalysedPainting({}, {}, Moments.of(np.eye(3)), (16, 16))

        return run

    keys = {name: painting_key(name.encode(), 512) for name in "abc"}
    assert cache.get(keys["a"], analyse("a"))[1] is False
    assert cache.get(keys["b"], analyse("b"))[1] is False
    assert cache.get(keys["a"], analyse("a"))[1] is True  # a is now the most recent
    cache.get(keys["c"], analyse("c"))  # evicts b
    assert cache.get(keys["a"], analyse("a"))[1] is True
    assert cache.get(keys["b"], analyse("b"))[1] is False
    assert made == ["a", "b", "c", "b"] and len(cache) == 2
    assert painting_key(b"a", 512) != painting_key(b"a", 256)  # the analysis size is in the key


# --- through the app ------------------------------------------------------------------------


def test_the_photo_takes_the_painting_s_colours_and_keeps_its_shapes(client):
    r = send(client)
    assert r.status_code == 200, r.data[:300]
    out = decoded(r.data)
    assert out.size == PHOTO.size
    assert distance_to_painting(out) < 0.4 * distance_to_painting(PHOTO)
    assert np.corrcoef(luminance(out, 2), luminance(PHOTO, 2))[0, 1] > 0.45  # the photo's shapes
    assert r.headers["X-Style-Model"].startswith("style_image:")
    assert r.headers["X-Style-Model"].endswith("/wct")


def test_json_answers_with_the_painting_named_and_the_second_time_from_the_cache(client):
    painting = encode(warm_painting(seed=7), "JPEG", quality=90)  # bytes no other test sends
    body = {
        "image": base64.b64encode(PHOTO_JPEG).decode(),
        "style_image": base64.b64encode(painting).decode(),
        "format": "png",
    }
    first = client.post("/", json=body)
    second = client.post("/", json=body)
    assert first.status_code == second.status_code == 200, first.data[:300]
    a, b = first.get_json(), second.get_json()
    assert (a["style_image_cached"], b["style_image_cached"]) == (False, True)
    assert a["style"] == b["style"] and a["style"].startswith("style_image:")
    assert a["arch"] == "wct" and (a["width"], a["height"]) == PHOTO.size
    assert a["image"] == b["image"]  # the cached statistics paint the same picture


def test_the_cache_header_and_stroke_scale_analysing_the_painting_anew(client):
    painting = encode(warm_painting(600, seed=11), "PNG")  # over the analysis side, 512
    first = send(client, painting=painting)
    again = send(client, painting=painting)
    larger = send(client, painting=painting, stroke_scale="2")
    assert [r.headers["X-Style-Image-Cache"] for r in (first, again, larger)] == [
        "miss", "hit", "miss",
    ]  # fmt: skip
    assert first.data == again.data
    assert not np.array_equal(np.asarray(decoded(first.data)), np.asarray(decoded(larger.data)))


def test_strength_moves_the_result_between_the_photo_and_the_painting(client):
    distances = [
        distance_to_painting(decoded(send(client, strength=str(s), format="png").data))
        for s in (0.0, 0.5, 1.0)
    ]
    assert distances[0] > distances[1] > distances[2]
    at_zero = decoded(send(client, strength="0", format="png").data)
    assert np.abs(mean_rgb(at_zero) - mean_rgb(PHOTO)).max() < 12  # the photo, as decoded


def test_preserve_color_keeps_the_photo_s_colours(client):
    plain = decoded(send(client, format="png").data)
    kept = decoded(send(client, format="png", preserve_color="true").data)
    assert distance_to_painting(kept) > 2 * distance_to_painting(plain)


def test_a_large_photo_is_painted_at_the_stroke_size_and_answered_at_its_own(client):
    big = encode(make_photo(1600, 1200, seed=2), "JPEG", quality=90)
    r = send(client, photo=big)
    assert r.status_code == 200, r.data[:300]
    assert decoded(r.data).size == (1600, 1200)
    assert r.headers["X-Painted-Size"] == "1024x768"


def test_a_tiny_photo_and_an_odd_sized_one_work(client):
    for size in ((1, 1), (17, 33)):
        r = send(client, photo=encode(make_photo(*size), "PNG"), format="png")
        assert r.status_code == 200, r.data[:300]
        assert decoded(r.data).size == size


def _clip() -> bytes:
    scene = np.asarray(make_photo(96, 64))
    return encode_clip(list(pan_frames(scene, 64, 64, frames=3, step=2, noise=0)), 10, audio=None)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda c: send(c, style="starry_night"), "not both"),
        (lambda c: send(c, arch="fast"), "arch applies to named styles"),
        (
            lambda c: c.post(
                "/",
                data={"image": (io.BytesIO(PHOTO_JPEG), "p.jpg"), "style_image": "a painting"},
            ),
            "must be a file",
        ),
        (
            lambda c: c.post("/?style_image=x", data=PHOTO_JPEG, content_type="image/jpeg"),
            "must be a file",
        ),
        (
            lambda c: c.post(
                "/",
                data={
                    "image": (io.BytesIO(PHOTO_JPEG), "p.jpg"),
                    "style_image": [
                        (io.BytesIO(PAINTING_PNG), "a"),
                        (io.BytesIO(PAINTING_PNG), "b"),
                    ],
                },
            ),
            "at most one",
        ),
        (
            lambda c: c.post(
                "/",
                data={
                    "video": (io.BytesIO(_clip()), "clip.mp4"),
                    "style_image": (io.BytesIO(PAINTING_PNG), "p.png"),
                },
            ),
            "works with photos",
        ),
        (
            lambda c: c.post(
                "/", json={"image": base64.b64encode(PHOTO_JPEG).decode(), "style_image": 7}
            ),
            "base64 string",
        ),
    ],
    ids=["with-style", "with-arch", "as-text", "in-query", "two-paintings", "video", "json-number"],
)
def test_misuse_is_a_400_that_says_what_to_send(client, make, needle):
    message = assert_image_error(make(client), 400, "invalid_parameter")
    assert needle in message


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    data = bytearray(encode(PAINTING, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "painting, status, code",
    [
        (b"not an image at all", 400, "invalid_image"),
        (PAINTING_PNG[: len(PAINTING_PNG) // 2], 400, "invalid_image"),
        (_jpeg_declaring(60_000, 60_000), 413, "image_too_large"),
        (
            encode(PAINTING, "JPEG")[:2] + b"\xff" * 200_000 + encode(PAINTING, "JPEG")[2:],
            422,
            "image_too_complex",
        ),
    ],
    ids=["garbage", "truncated", "declares-3.6-gigapixels", "jpeg-fill"],
)
def test_a_bad_painting_gets_the_photo_s_errors_quickly_and_says_it_was_the_painting(
    client, painting, status, code
):
    t0 = time.perf_counter()
    message = assert_image_error(send(client, painting=painting), status, code)
    assert time.perf_counter() - t0 < 10
    assert message.startswith("style_image: ")
    assert send(client).status_code == 200  # and the next request is served


def test_an_empty_painting_file_says_to_send_one(client):
    message = assert_image_error(send(client, painting=b""), 400, "invalid_image")
    assert "style_image" in message
