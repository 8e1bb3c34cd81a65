"""Full-resolution results: paint size, the upsampling graphs (exported by our own code, checked
against the numpy path they replaced), tiles that match one run, and the API answering a phone
photo at its own size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import decoded
from PIL import Image, ImageDraw

from devtools.images import make_phone_jpeg, make_photo
from export import upsample_graph, upsample_parity
from stylefn.imaging import full_resolution, upsample
from stylefn.imaging.upsample import Finish, Upsampler
from stylefn.styles import tiling

ROOT = Path(__file__).resolve().parents[1]


def session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("size", "scale", "budget", "expected"),
    [
        ((4032, 3024), 1.0, 10**9, (1024, 768)),  # the 1024 px result's strokes
        ((4032, 3024), 2.0, 10**9, (512, 384)),
        ((4032, 3024), 0.25, 10**9, (4032, 3024)),  # never above the photo's own size
        ((640, 480), 1.0, 10**9, (640, 480)),
        ((4032, 3024), 0.25, 1_000_000, (1155, 866)),  # the run budget caps it
    ],
)
def test_paint_size(size, scale, budget, expected):
    assert full_resolution.paint_size(*size, scale, budget) == expected


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> tuple[Path, Path]:
    """Both full-resolution graphs, exported by export/upsample_graph.py as shipped."""
    return upsample_graph.write(tmp_path_factory.mktemp("graphs"))


@pytest.fixture(scope="module")
def upsampler(graphs) -> Upsampler:
    return upsample_parity.upsampler(*graphs)


def test_the_shipped_graphs_are_what_export_writes(graphs):
    """function/graphs/ holds the current export (re-run `python -m export.upsample_graph`)."""
    for written, shipped in zip(graphs, Upsampler.paths(), strict=True):
        assert shipped.read_bytes() == written.read_bytes(), shipped


def test_graphs_match_the_numpy_path_within_tolerance(upsampler):
    """Parity with the numpy path they replaced, as export checks it on real photos, here on
    generated ones painted by the shipped network, every style; in grey levels. (A network of
    a few test steps paints noise whose sharpest edges differ from machine to machine under
    bf16, which moved the figures across the tolerance; a trained one paints strokes.)"""
    network = session(ROOT / "function" / "models" / "bundled.fast.onnx")
    count = network.get_inputs()[1].shape[0]  # style_weights: (S,)
    photos = [
        (f"photo{i}", np.asarray(make_photo(190 + 37 * i, 128 + 11 * i, seed=i))) for i in range(3)
    ]
    cases = []
    for k in range(count):

        def paint(rgb: np.ndarray, k: int = k) -> np.ndarray:
            weights = np.eye(count, dtype=np.float32)[k]  # style k alone
            return network.run(None, {"image": rgb[None], "style_weights": weights})[0][0]

        cases += upsample_parity.compare(upsampler, [photos[k % len(photos)]], paint)
    assert len(cases) == count * len(upsample_parity.ENLARGEMENTS) * len(upsample_parity.FINISHES)
    upsample_parity.check(cases)  # raises beyond TOLERANCE


def test_upsampling_brings_back_the_photos_detail(upsampler):
    """With a network that paints the photo itself, upsampling the painting should give the
    full-size photo's edges back far sharper than Lanczos alone: they come from the guide."""
    img = Image.new("RGB", (480, 320), (90, 90, 90))
    draw = ImageDraw.Draw(img)
    rng = np.random.default_rng(3)
    for _ in range(40):
        x, y = (int(v) for v in rng.integers(0, 440, 2))
        draw.rectangle((x, y, x + 3 + int(rng.integers(0, 30)), y + 40), fill=(220, 200, 40))
    photo = np.asarray(img)
    small = np.asarray(Image.fromarray(photo).resize((120, 80), Image.Resampling.LANCZOS))
    lanczos = np.asarray(Image.fromarray(small).resize((480, 320), Image.Resampling.LANCZOS))
    guided = upsampler(photo, small, small, Finish())
    assert guided.shape == photo.shape and guided.dtype == np.uint8
    err = {k: np.abs(v.astype(int) - photo).mean() for k, v in (("g", guided), ("l", lanczos))}
    assert err["g"] < 0.5 * err["l"], err


def test_upsampling_keeps_the_paintings_own_strokes(upsampler):
    """Texture the network painted that is not in the photo must survive the upsampling (a
    plain guided filter smooths it away), and a flat photo adds nothing to it: the painting
    comes back as Pillow's bicubic upscaling makes it (in float: in 8 bits Pillow also clips
    between its two passes)."""
    photo = np.full((320, 480, 3), 128, np.uint8)
    small = np.full((80, 120, 3), 128, np.uint8)
    strokes = np.random.default_rng(8).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    out = upsampler(photo, strokes, small, Finish()).astype(int)
    channels = [Image.fromarray(strokes[..., c].astype(np.float32)) for c in range(3)]
    bicubic = np.stack(
        [np.asarray(c.resize((480, 320), Image.Resampling.BICUBIC)) for c in channels], -1
    )
    assert np.abs(out - np.clip(np.rint(bicubic), 0, 255)).max() <= 1


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_strips_join_without_seams(upsampler, monkeypatch, rows):
    """Strips of any height give what one run over the whole photo gives: every row is
    sampled where a resize of the whole puts it."""
    photo = np.asarray(make_photo(300, 203, seed=4))
    small = np.asarray(Image.fromarray(photo).resize((71, 48), Image.Resampling.LANCZOS))
    painted = np.ascontiguousarray(small[:, ::-1])  # anything unlike the photo
    finish = Finish(0.7, preserve_color=True)
    monkeypatch.setattr(upsample, "STRIP_PIXELS", 10**9)
    whole = upsampler(photo, painted, small, finish).astype(int)
    monkeypatch.setattr(upsample, "STRIP_PIXELS", 300 * rows)
    strips = upsampler(photo, painted, small, finish).astype(int)
    assert np.abs(strips - whole).max() <= 1


@pytest.mark.parametrize("fill", [0, 255])
@pytest.mark.parametrize(("photo_size", "small_size"), [
    ((97, 61), (25, 16)), ((1, 300), (1, 75)), ((300, 1), (75, 1)), ((5, 5), (5, 5)),
])  # fmt: skip
def test_flat_and_degenerate_images_give_no_nan(graphs, upsampler, fill, photo_size, small_size):
    """A flat photo (no variance for the guided filter), one pixel wide or high, or painted
    at its own size: finite slopes, and the flat painting back exactly."""
    w, h = photo_size
    photo = np.full((h, w, 3), fill, np.uint8)
    sw, sh = small_size
    small = np.full((sh, sw, 3), fill, np.uint8)
    painted = np.full((sh, sw, 3), (200, 40, 90), np.uint8)
    guide = session(graphs[0])
    (slope,) = guide.run(None, {"painted": painted, "photo_small": small})
    assert np.isfinite(slope).all()
    out = upsampler(photo, painted, small, Finish())
    assert (out == (200, 40, 90)).all()


def test_painted_at_its_own_size_only_the_finish_applies(upsampler):
    photo = np.asarray(make_photo(130, 90, seed=9))
    painted = np.asarray(make_photo(130, 90, seed=10))
    assert (upsampler(photo, painted, photo, Finish()) == painted).all()
    assert (upsampler(photo, painted, photo, Finish(0.0)) == photo).all()
    half = upsampler(photo, painted, photo, Finish(0.5)).astype(int)
    assert np.abs(half - (photo.astype(int) + painted) / 2).max() <= 1


@pytest.fixture(scope="module")
def fast_tiles(model_dir):
    plain, tiles = model_dir / "stripes.fast.onnx", model_dir / "stripes.fast.tiles.onnx"
    assert tiles.is_file(), "write_model must export the tile graph beside the model"
    return session(plain), session(tiles)


@pytest.mark.parametrize("shape", [(333, 517), (200, 200), (97, 1001)])
def test_tiles_with_the_whole_images_statistics_equal_one_run(fast_tiles, shape):
    plain, tiles = fast_tiles
    rgb = np.asarray(make_photo(shape[1], shape[0], seed=5))
    (one_run,) = plain.run(["stylized"], {"image": rgb[None]})
    stats = tiling.norm_statistics(tiles, rgb, max_pixels=10**9)
    tiled = tiling.paint_in_tiles(tiles, rgb, max_pixels=40_000, stats=stats)
    assert tiled.shape == rgb.shape
    assert np.abs(tiled.astype(int) - one_run[0]).max() <= 2


def test_tiles_with_shrunk_statistics_stay_close_and_show_no_seam(fast_tiles):
    plain, tiles = fast_tiles
    rgb = np.asarray(make_photo(640, 480, seed=6))
    (one_run,) = plain.run(["stylized"], {"image": rgb[None]})
    tiled = tiling.paint_in_tiles(tiles, rgb, max_pixels=60_000).astype(int)
    diff = np.abs(tiled - one_run[0])
    # Shrunk statistics are an estimate, so judge the error against what the network does to
    # the photo (~70 grey levels for this tiny model): wrong statistics would be of that order.
    effect = np.abs(one_run[0].astype(int) - rgb).mean()
    assert diff.mean() < 0.1 * effect, (diff.mean(), effect)
    # A seam would be a step across a tile border larger than the image's own steps nearby.
    cuts = {(rows.start, cols.start) for rows, cols in tiling.tiles(480, 640, 60_000)}
    assert len(cuts) > 1
    for axis, starts in ((0, {y for y, _ in cuts}), (1, {x for _, x in cuts})):
        steps = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))
        for at in starts - {0}:
            assert steps[at - 1] < 2 * np.median(steps[at - 9 : at + 8]) + 2, (axis, at)


@pytest.mark.parametrize("shape", [(480, 640), (97, 1001), (2048, 1536), (8, 8)])
@pytest.mark.parametrize("budget", [40_000, 2_000_000])
def test_tiles_cover_the_image_once_within_the_budget(shape, budget):
    h, w = shape
    covered = np.zeros(shape, int)
    for rows, cols in tiling.tiles(h, w, budget):
        covered[rows, cols] += 1
        assert rows.start % 8 == 0 and cols.start % 8 == 0
        tile_h = min(h, rows.stop + tiling.MARGIN) - max(0, rows.start - tiling.MARGIN)
        tile_w = min(w, cols.stop + tiling.MARGIN) - max(0, cols.start - tiling.MARGIN)
        assert tile_h * tile_w <= 1.05 * max(budget, (64 + 2 * tiling.MARGIN) ** 2)
    assert (covered == 1).all()


def test_tile_graph_without_given_statistics_is_the_model(fast_tiles):
    plain, tiles = fast_tiles
    rgb = np.asarray(make_photo(160, 120, seed=7))
    (a,) = plain.run(["stylized"], {"image": rgb[None]})
    size = tiles.get_inputs()[1].shape[1]
    (b,) = tiles.run(
        ["stylized"],
        {
            "image": rgb[None],
            "norm_stats": np.zeros((2, size), np.float32),
            "use_norm_stats": np.zeros((), np.float32),
        },
    )
    assert np.abs(a.astype(int) - b).max() <= 1


def test_phone_photo_comes_back_at_its_own_upright_size(make_client):
    client = make_client()
    photo = make_phone_jpeg(2000, 1500, orientation=6)  # stored landscape, upright portrait
    r = client.post("/", data={"image": (io.BytesIO(photo), "phone.jpg"), "style": "stripes"})
    assert r.status_code == 200, r.get_json()
    out = decoded(r.data)
    assert out.size == (1500, 2000)
    assert r.headers["X-Painted-Size"] == "768x1024"
    assert not np.isnan(np.asarray(out, np.float32)).any()


@pytest.mark.parametrize(("fields", "size", "painted"), [
    ({"stroke_scale": "2"}, (1500, 2000), "384x512"),
    ({"stroke_scale": "0.5", "max_size": "1000"}, (750, 1000), "750x1000"),
])  # fmt: skip
def test_stroke_scale_sets_the_paint_size_not_the_result_size(make_client, fields, size, painted):
    client = make_client()
    photo = make_phone_jpeg(2000, 1500, orientation=6)
    r = client.post("/", data={"image": (io.BytesIO(photo), "phone.jpg"), **fields})
    assert r.status_code == 200, r.get_json()
    assert decoded(r.data).size == size
    assert r.headers["X-Painted-Size"] == painted


@pytest.mark.parametrize("value", ["0", "0.1", "5", "nan", "big", ""])
def test_bad_stroke_scale_is_a_clear_400(make_client, value):
    r = make_client().post(
        "/", data={"image": (io.BytesIO(make_phone_jpeg(64, 48)), "p.jpg"), "stroke_scale": value}
    )
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["message"].startswith("stroke_scale must be")


def test_a_result_too_wide_for_webp_is_a_400_before_any_work(make_client):
    """Full-size results can exceed what WebP holds (16383 px a side): a clear 400, not the
    encoder's 500 after painting; the same picture as JPEG is served at its size."""
    client = make_client()
    wide = io.BytesIO()
    Image.new("RGB", (17000, 16), (120, 30, 200)).save(wide, "PNG")
    r = client.post("/?format=webp", data=wide.getvalue(), headers={"Content-Type": "image/png"})
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_parameter"
    assert "max_size=16383" in r.get_json()["error"]["message"]
    r = client.post("/?format=webp&max_size=16383", data=wide.getvalue(),
                    headers={"Content-Type": "image/png"})  # fmt: skip
    assert r.status_code == 200 and decoded(r.data).size == (16383, 15)
