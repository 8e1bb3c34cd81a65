"""Tests for stylefn/imaging (decode, encode); all images are built in memory (with Pillow, or
PNG by hand). Each refusal is checked twice: imaging's own exception, and what a client sees for
it (stylefn/http/error_map.py)."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from devtools.bombs import progressive_scan_bomb
from devtools.images import make_photo
from stylefn.http.error_map import api_error
from stylefn.http.errors import ApiError
from stylefn.imaging.decode import DecodedImage, decode_image
from stylefn.imaging.encode import MEDIA_TYPES, encode_image
from stylefn.imaging.errors import ImageTooComplex, ImageTooLarge, InvalidImage, UnsupportedOutput

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def api(raised: pytest.ExceptionInfo) -> ApiError:
    """The API's error for an exception imaging raised."""
    return api_error(raised.value, request_id="test", max_request_bytes=1)


def decode(data: bytes, max_pixels: int = 16_000_000, max_side: int = 4096) -> DecodedImage:
    return decode_image(data, max_pixels=max_pixels, max_side=max_side)


def quadrants(w: int = 40, h: int = 30) -> Image.Image:
    """Red | green over blue | white: catches flips, rotations and channel swaps."""
    img = Image.new("RGB", (w, h))
    for colour, box in [
        (RED, (0, 0, w // 2, h // 2)),
        (GREEN, (w // 2, 0, w, h // 2)),
        (BLUE, (0, h // 2, w // 2, h)),
        (WHITE, (w // 2, h // 2, w, h)),
    ]:
        img.paste(colour, box)
    return img


def assert_colour(pixel: np.ndarray, expected: tuple[int, ...], tol: int = 40) -> None:
    diff = np.abs(pixel.astype(int) - np.array(expected))
    assert diff.max() <= tol, f"{pixel.tolist()} is not close to {expected}"


def png_by_hand(w: int, h: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG whose header says anything we like; `raw` is the unfiltered scanline data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def noise(w: int, h: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))


# --- decoding: formats and modes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected_format"),
    [
        ("JPEG", "JPEG"),
        ("PNG", "PNG"),
        ("WEBP", "WEBP"),
        ("GIF", "GIF"),
        ("BMP", "BMP"),
        ("TIFF", "TIFF"),
    ],
)
def test_each_format_round_trips(fmt, expected_format):
    out = decode(save(quadrants(), fmt))
    assert out.source_format == expected_format
    assert out.rgb.shape == (30, 40, 3)
    assert out.rgb.dtype == np.uint8 and out.rgb.flags.c_contiguous
    assert out.alpha is None
    for (y, x), colour in [((7, 10), RED), ((7, 30), GREEN), ((22, 10), BLUE), ((22, 30), WHITE)]:
        assert_colour(out.rgb[y, x], colour)


def test_palette_png_with_transparent_index_keeps_alpha():
    img = Image.new("P", (8, 4), 0)
    img.putpalette([0, 0, 0, *RED])
    img.paste(1, (4, 0, 8, 4))  # left half index 0 (transparent), right half red
    out = decode(save(img, "PNG", transparency=0))
    assert out.alpha is not None and out.alpha.shape == (4, 8)
    assert (out.alpha[:, :4] == 0).all() and (out.alpha[:, 4:] == 255).all()
    assert (out.rgb[:, 4:] == RED).all()


def test_palette_png_with_per_index_alpha():
    img = Image.new("P", (6, 2), 0)
    img.putpalette([*RED, *BLUE])
    img.paste(1, (3, 0, 6, 2))
    out = decode(save(img, "PNG", transparency=bytes([64, 255])))
    assert (out.alpha[:, :3] == 64).all() and (out.alpha[:, 3:] == 255).all()
    assert (out.rgb[:, :3] == RED).all() and (out.rgb[:, 3:] == BLUE).all()


def test_palette_png_without_transparency_has_no_alpha():
    img = Image.new("P", (8, 4), 1)
    img.putpalette([0, 0, 0, *GREEN])
    out = decode(save(img, "PNG"))
    assert out.alpha is None
    assert (out.rgb == GREEN).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_modes_keep_partial_alpha(mode):
    rgba = Image.new("RGBA", (6, 2), (200, 200, 200, 255))
    rgba.paste((200, 200, 200, 64), (0, 0, 3, 2))
    out = decode(save(rgba.convert(mode), "PNG"))
    assert out.alpha is not None
    assert (out.alpha[:, :3] == 64).all() and (out.alpha[:, 3:] == 255).all()
    assert_colour(out.rgb[0, 5], (200, 200, 200), tol=2)


def test_fully_opaque_rgba_drops_alpha():
    out = decode(save(Image.new("RGBA", (5, 5), (*BLUE, 255)), "PNG"))
    assert out.alpha is None
    assert (out.rgb == BLUE).all()


def test_16bit_rgb_png_scales_to_8bit():
    # 0x2000, 0x8000, 0xFFFF per channel: an 8-bit decoder must give ~32, ~128, 255, not clip.
    row = b"\x00" + struct.pack(">HHH", 0x2000, 0x8000, 0xFFFF) * 4
    out = decode(png_by_hand(4, 3, 16, 2, row * 3))
    assert out.rgb.shape == (3, 4, 3)
    assert_colour(out.rgb[1, 2], (32, 128, 255), tol=1)


def test_16bit_grayscale_png_scales_to_8bit():
    values = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16).repeat(2, axis=0)
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    out = decode(save(img, "PNG"))
    assert out.rgb[0, :, 0].tolist() == [0, 64, 128, 255]
    assert (out.rgb[..., 0] == out.rgb[..., 1]).all() and (out.rgb[..., 1] == out.rgb[..., 2]).all()


def test_32bit_int_tiff_is_read_as_16bit():
    img = Image.fromarray(np.full((3, 3), 257 * 100, dtype=np.int32))
    assert img.mode == "I"
    out = decode(save(img, "TIFF"))
    assert (out.rgb == 100).all()


def test_cmyk_jpeg_becomes_rgb():
    out = decode(save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert out.source_format == "JPEG"
    assert out.rgb.shape == (16, 16, 3)
    assert_colour(out.rgb[8, 8], RED)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_grayscale_becomes_equal_rgb_channels(fmt):
    out = decode(save(Image.new("L", (9, 5), 100), fmt))
    assert out.rgb.shape == (5, 9, 3)
    assert np.abs(out.rgb.astype(int) - 100).max() <= 2
    assert out.alpha is None


def test_bilevel_image():
    img = Image.new("1", (8, 2), 0)
    img.paste(1, (4, 0, 8, 2))
    out = decode(save(img, "BMP"))
    assert (out.rgb[:, :4] == 0).all() and (out.rgb[:, 4:] == 255).all()


def test_animated_gif_returns_first_frame():
    colours = [RED] + [(0, 5 * i, 255) for i in range(49)]  # distinct, or Pillow merges frames
    frames = [Image.new("RGB", (8, 8), c) for c in colours]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)
    assert Image.open(io.BytesIO(data)).n_frames == 50
    out = decode(data)
    assert out.rgb.shape == (8, 8, 3)
    assert (out.rgb == RED).all()
    assert out.source_format == "GIF"


def exif_rotated_jpeg(w: int, h: int) -> bytes:
    """A w x h JPEG, red on the left and blue on the right, tagged Orientation=6 (90° CW)."""
    img = Image.new("RGB", (w, h), BLUE)
    img.paste(RED, (0, 0, w // 2, h))
    exif = Image.Exif()
    exif[0x0112] = 6
    return save(img, "JPEG", exif=exif, quality=95)


def test_exif_orientation_is_applied():
    out = decode(exif_rotated_jpeg(40, 20))
    assert out.rgb.shape == (40, 20, 3)  # W and H swapped
    assert_colour(out.rgb[5, 10], RED)  # turned clockwise, the left edge is now on top
    assert_colour(out.rgb[35, 10], BLUE)


def test_exif_orientation_with_downscale():
    out = decode(exif_rotated_jpeg(400, 200), max_side=50)  # 4x smaller: the JPEG draft path
    assert out.rgb.shape == (50, 25, 3)
    assert_colour(out.rgb[5, 12], RED)
    assert_colour(out.rgb[45, 12], BLUE)


def test_a_large_shrink_decodes_the_jpeg_at_reduced_size(monkeypatch):
    """max_size far below the photo's size: libjpeg decodes at 1/2..1/8 scale (Pillow's draft),
    never below max_size, and the result is the photo shrunk."""
    asked = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def draft(img, mode, size):
        asked.append(size)
        return real_draft(img, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", draft)
    photo = make_photo(1600, 1200, seed=2)
    out = decode(save(photo, "JPEG", quality=95), max_side=400)
    assert asked == [(400, 300)] and out.rgb.shape == (300, 400, 3)
    whole = np.asarray(photo.resize((400, 300), Image.Resampling.LANCZOS), float)
    assert np.abs(out.rgb - whole).mean() < 2


def test_the_cost_bound_is_checked_before_a_reduced_decode(monkeypatch):
    """A scan bomb asked for at a small max_size is refused by its structure, before Pillow
    decodes anything, draft or not."""
    fail = lambda *a: pytest.fail("decoded a scan bomb")  # noqa: E731
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", fail)
    with pytest.raises(ImageTooComplex):
        decode(progressive_scan_bomb(repeats=1000, side=2000), max_side=64)


# --- decoding: size limits --------------------------------------------------------------------


@pytest.mark.parametrize("max_pixels", [16_000_000, 10**12])  # ours first, then Pillow's bomb guard
def test_huge_declared_png_is_refused_fast(max_pixels):
    data = png_by_hand(50_000, 50_000, 8, 2, b"\x00" * 16)
    start = time.perf_counter()
    with pytest.raises(ImageTooLarge) as e:
        decode(data, max_pixels=max_pixels)
    assert time.perf_counter() - start < 1.0
    assert api(e).status == 413 and api(e).code == "image_too_large"
    assert "2,500,000,000 pixels" in e.value.message and "Resize" in e.value.message


def test_pixel_limit_is_checked_before_decoding():
    # The header says 3000x3000 but the data is junk: decoding first would give a 400.
    data = png_by_hand(3000, 3000, 8, 2, b"\x00" * 16)
    with pytest.raises(ImageTooLarge) as e:
        decode(data, max_pixels=1_000_000)
    assert api(e).status == 413
    assert "3000x3000" in e.value.message and "1,000,000" in e.value.message


def test_pixel_limit_boundary():
    assert decode(save(Image.new("RGB", (100, 100)), "PNG"), max_pixels=10_000).rgb.shape[:2] == (
        100,
        100,
    )
    with pytest.raises(ImageTooLarge) as e:
        decode(save(Image.new("RGB", (100, 101)), "PNG"), max_pixels=10_000)
    assert api(e).code == "image_too_large"


@pytest.mark.parametrize(
    ("size", "max_side", "expected_hw"),
    [
        ((200, 100), 50, (25, 50)),
        ((30, 90), 45, (45, 15)),
        ((101, 37), 50, (18, 50)),
        ((1, 7), 3, (3, 1)),
        ((300, 2), 30, (1, 30)),  # short side never rounds to 0
        ((20, 10), 100, (10, 20)),  # never upscale
        ((64, 32), 64, (32, 64)),  # exactly at the limit: untouched
    ],
)
def test_max_side_downscale_keeps_aspect_ratio(size, max_side, expected_hw):
    out = decode(save(quadrants(*size), "PNG"), max_side=max_side)
    assert out.rgb.shape == (*expected_hw, 3)


def test_downscale_keeps_alpha_and_colours():
    img = Image.new("RGBA", (200, 100), (*GREEN, 255))
    img.paste((*RED, 0), (0, 0, 100, 100))  # left half fully transparent
    out = decode(save(img, "PNG"), max_side=50)
    assert out.rgb.shape == (25, 50, 3) and out.alpha.shape == (25, 50)
    assert (out.alpha[:, :20] == 0).all() and (out.alpha[:, 30:] == 255).all()
    assert_colour(out.rgb[12, 40], GREEN, tol=2)


def test_large_jpeg_downscale_keeps_colours():
    out = decode(save(quadrants(800, 600), "JPEG", quality=95), max_side=80)
    assert out.rgb.shape == (60, 80, 3)
    for (y, x), colour in [((15, 20), RED), ((15, 60), GREEN), ((45, 20), BLUE), ((45, 60), WHITE)]:
        assert_colour(out.rgb[y, x], colour)


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (7, 1)])
def test_tiny_images(size):
    out = decode(save(Image.new("RGB", size, GREEN), "PNG"))
    assert out.rgb.shape == (size[1], size[0], 3)
    assert (out.rgb == GREEN).all()


@pytest.mark.parametrize(("max_pixels", "max_side"), [(0, 10), (10, 0), (-1, -1)])
def test_bad_limits_are_programming_errors(max_pixels, max_side):
    with pytest.raises(ValueError):
        decode(save(Image.new("RGB", (2, 2)), "PNG"), max_pixels=max_pixels, max_side=max_side)


# --- decoding: bad input ----------------------------------------------------------------------


def truncated(fmt: str) -> bytes:
    data = save(noise(64, 64), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(np.random.default_rng(1).bytes(2000), id="random"),
        pytest.param(truncated("JPEG"), id="truncated-jpeg"),
        pytest.param(truncated("PNG"), id="truncated-png"),
        pytest.param(b"just some text\n" * 10, id="text"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', id="svg"),
        pytest.param(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", id="pdf"),
        pytest.param(save(Image.new("RGB", (8, 8)), "PPM"), id="ppm-not-accepted"),
    ],
)
def test_bad_input_is_invalid_image(data):
    with pytest.raises(InvalidImage) as e:
        decode(data)
    assert api(e).status == 400 and api(e).code == "invalid_image"
    assert "JPEG, PNG, WebP, GIF, BMP or TIFF" in e.value.message


# --- encoding ---------------------------------------------------------------------------------


def test_media_types():
    assert MEDIA_TYPES == {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@pytest.fixture
def rgb() -> np.ndarray:
    return np.asarray(quadrants(40, 30)).copy()


@pytest.fixture
def alpha() -> np.ndarray:
    a = np.full((30, 40), 255, np.uint8)
    a[:, :20] = 80
    return a


@pytest.mark.parametrize(
    ("fmt", "with_alpha", "mode", "pil_format"),
    [
        ("jpeg", False, "RGB", "JPEG"),
        ("jpeg", True, "RGB", "JPEG"),  # JPEG cannot store alpha: flattened onto white
        ("png", False, "RGB", "PNG"),
        ("png", True, "RGBA", "PNG"),
        ("webp", False, "RGB", "WEBP"),
        ("webp", True, "RGBA", "WEBP"),
    ],
)
def test_encode_decodes_back(rgb, alpha, fmt, with_alpha, mode, pil_format):
    data = encode_image(rgb, alpha if with_alpha else None, fmt, 90)
    img = Image.open(io.BytesIO(data))
    assert img.format == pil_format and img.mode == mode and img.size == (40, 30)
    pixels = np.asarray(img)
    flattened = fmt == "jpeg" and with_alpha  # red at alpha 80 over white: (255, 175, 175)
    assert_colour(pixels[7, 10, :3], (255, 175, 175) if flattened else RED)
    assert_colour(pixels[22, 30, :3], WHITE)
    if mode == "RGBA":
        assert abs(int(pixels[7, 10, 3]) - 80) <= 2 and pixels[7, 30, 3] == 255


def test_png_round_trip_is_lossless(rgb, alpha):
    out = decode(encode_image(rgb, alpha, "png", 90))
    assert (out.rgb == rgb).all() and (out.alpha == alpha).all()


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_is_used(fmt):
    rgb = np.asarray(noise(64, 64))
    assert len(encode_image(rgb, None, fmt, 10)) < len(encode_image(rgb, None, fmt, 95))


@pytest.mark.parametrize("fmt", ["gif", "JPEG", "jpg", ""])
def test_unknown_format_is_invalid_parameter(rgb, fmt):
    with pytest.raises(UnsupportedOutput) as e:
        encode_image(rgb, None, fmt, 90)
    assert api(e).status == 400 and api(e).code == "invalid_parameter"
    assert all(name in e.value.message for name in ("jpeg", "png", "webp"))


@pytest.mark.parametrize("quality", [0, 101, 50.5, True])
def test_bad_quality_is_invalid_parameter(rgb, quality):
    with pytest.raises(UnsupportedOutput) as e:
        encode_image(rgb, None, "jpeg", quality)
    assert api(e).code == "invalid_parameter"


@pytest.mark.parametrize(
    ("rgb_arr", "alpha_arr"),
    [
        (np.zeros((4, 4, 3), np.float32), None),
        (np.zeros((4, 4, 4), np.uint8), None),
        (np.zeros((4, 4), np.uint8), None),
        (np.zeros((0, 4, 3), np.uint8), None),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8)),
        (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)),
    ],
)
def test_bad_arrays_are_programming_errors(rgb_arr, alpha_arr):
    with pytest.raises(ValueError):
        encode_image(rgb_arr, alpha_arr, "png", 90)
