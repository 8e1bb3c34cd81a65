"""Serving a multi-style model: each of its styles by name, mixes of them
(`style=waves:0.5,checks:0.5`), and the errors a malformed or impossible mix gets."""

from __future__ import annotations

import io

import numpy as np
import pytest

from devtools.images import make_photo
from stylefn.styles.mix import BadMix, parse_mix
from stylefn.styles.registry import StyleRegistry
from tests.conftest import decoded, encode

PHOTO = encode(make_photo(96, 64, seed=4), "PNG")


@pytest.fixture(scope="module")
def client(make_client, multi_model_dir, model_dir):
    return make_client(MODEL_DIR=f"{multi_model_dir}:{model_dir}")


def paint(client, style, **fields) -> np.ndarray:
    response = client.post(
        "/", data={"image": (io.BytesIO(PHOTO), "p.png"), "style": style, "format": "png",
                   **fields},
    )  # fmt: skip
    assert response.status_code == 200, response.get_json()
    return np.asarray(decoded(response.data), np.float32)


def error(response) -> tuple[int, str, str]:
    body = response.get_json()["error"]
    return response.status_code, body["code"], body["message"]


def test_styles_lists_each_style_of_the_network_and_what_it_mixes_with(client):
    listed = {s["name"]: s for s in client.get("/styles").get_json()["styles"]}
    assert listed["waves"]["mixable_with"] == ["checks"]
    assert listed["checks"]["mixable_with"] == ["waves"]
    assert listed["stripes"]["mixable_with"] == []  # a single-style model
    assert listed["waves"]["title"] == "Waves" and listed["waves"]["archs"] == ["fast"]
    for name in ("waves", "checks"):  # each style's own painting, from the one file
        painting = client.get(listed[name]["painting_url"])
        assert painting.status_code == 200 and painting.data.startswith(b"\xff\xd8")
    assert (
        client.get(listed["waves"]["painting_url"]).data
        != client.get(listed["checks"]["painting_url"]).data
    )


def test_a_half_and_half_mix_lies_between_its_two_styles(client):
    waves, checks = paint(client, "waves"), paint(client, "checks")
    half = paint(client, "waves:0.5,checks:0.5")
    apart = np.abs(waves - checks).mean()
    assert apart > 2  # the two styles really differ
    assert np.abs(half - waves).mean() < apart and np.abs(half - checks).mean() < apart
    assert np.abs(half - waves).mean() > 0.1 * apart  # and it is not simply one of them
    assert np.array_equal(paint(client, "waves:1,checks:0"), waves)
    assert np.array_equal(paint(client, "waves:2,checks:2"), half)  # weights are normalised


def test_json_takes_a_mix_as_an_object_and_names_it_back(client):
    import base64

    response = client.post(
        "/", json={"image": base64.b64encode(PHOTO).decode(), "style": {"checks": 3, "waves": 1}}
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["style"] == "checks:0.75,waves:0.25" and body["arch"] == "fast"
    assert response.headers["X-Style-Model"] == "checks:0.75,waves:0.25/fast"


@pytest.mark.parametrize(
    "style, status, code, hint",
    [
        ("waves:x,checks:1", 400, "invalid_parameter", "starry_night:0.6,the_scream:0.4"),
        ("waves:-1,checks:2", 400, "invalid_parameter", "0 or more"),
        ("waves:0,checks:0", 400, "invalid_parameter", "add up to 0"),
        ("waves:nan", 400, "invalid_parameter", "0 or more"),
        ("waves:1,waves:1", 400, "invalid_parameter", "named twice"),
        ("waves:1,,checks:1", 400, "invalid_parameter", "empty"),
        ("nope:0.5,waves:0.5", 404, "unknown_style", "Available styles"),
        ("waves:0.5,stripes:0.5", 400, "invalid_parameter", "mixable_with"),
        (",".join(f"s{i}:1" for i in range(40)), 400, "invalid_parameter", "1 to 16"),
    ],
)
def test_a_bad_mix_says_how_to_write_one(client, style, status, code, hint):
    got = error(client.post("/", data={"image": (io.BytesIO(PHOTO), "p.png"), "style": style}))
    assert got[:2] == (status, code), got
    assert hint in got[2], got


def test_mix_parsing_normalises_and_keeps_the_order():
    mix = parse_mix(" a : 3 , b:1 ")
    assert mix.parts == (("a", 0.75), ("b", 0.25)) and mix.label == "a:0.75,b:0.25"
    assert parse_mix("a").label == "a" and parse_mix({"a": 0, "b": 2}).parts == (("b", 1.0),)
    with pytest.raises(BadMix):
        parse_mix({"a": True})


def test_a_mix_painted_in_tiles_matches_one_run(multi_model_dir):
    """The tile graph takes the style weights too: a large photo in a mix is painted with the
    same statistics as one run would use."""
    from stylefn.styles import tiling

    registry = StyleRegistry(multi_model_dir)
    choice = registry.get(parse_mix("waves:0.3,checks:0.7"))
    rgb = np.asarray(make_photo(160, 120, seed=7))
    whole = registry.stylize(choice, rgb)
    tiles = registry.tiles_session(choice.model)
    assert tiles is not None
    style = {"style_weights": choice.weights}
    stats = tiling.norm_statistics(tiles, rgb, 160 * 120, style)
    tiled = tiling.paint_in_tiles(tiles, rgb, max_pixels=48 * 48, stats=stats, style=style)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 2


def test_mixable_with_follows_the_arch_a_request_gets(
    make_client, multi_model_dir, model_dir, tmp_path
):
    """A style in a multi-style fast network and in a single-style johnson one mixes only where
    its default arch's network does."""
    import onnx

    model = onnx.load(str(model_dir / "dots.onnx"))
    for prop in model.metadata_props:
        if prop.key == "name":
            prop.value = "waves"  # the same style, as a single-style johnson network
    onnx.save(model, str(tmp_path / "waves.onnx"))
    dirs = f"{multi_model_dir}:{tmp_path}"
    for arch, mixes in (("fast", ["checks"]), ("johnson", [])):
        client = make_client(MODEL_DIR=dirs, DEFAULT_ARCH=arch)
        listed = {s["name"]: s for s in client.get("/styles").get_json()["styles"]}
        assert listed["waves"]["archs"] == ["johnson", "fast"]
        assert listed["waves"]["mixable_with"] == mixes, arch


def test_the_mix_sheet_paints_a_row_of_shares_between_the_two_styles(
    multi_model_dir, model_dir, tmp_path
):
    from PIL import Image

    from export import mix_sheet
    from export.gallery import LABEL_H, TILE

    photo, out = tmp_path / "photo.png", tmp_path / "mix.jpg"
    make_photo(96, 64, seed=5).save(photo)
    args = ["--models", str(multi_model_dir), "--photo", str(photo), "--out", str(out)]
    assert mix_sheet.main([*args, "--pairs", "waves:checks"]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB"), np.float32)
    assert sheet.shape == (TILE[1] + LABEL_H, TILE[0] * (len(mix_sheet.SHARES) + 2), 3)
    shares = [
        sheet[LABEL_H:, TILE[0] * (i + 1) : TILE[0] * (i + 2)] for i in range(len(mix_sheet.SHARES))
    ]
    first, half, last = shares[0], shares[len(shares) // 2], shares[-1]
    assert np.abs(first - last).mean() > 3  # the two styles differ, so the row says something
    assert np.abs(half - first).mean() > 1 and np.abs(half - last).mean() > 1

    with pytest.raises(SystemExit) as unmixable:  # styles of two networks
        mix_sheet.main([*args, "--models", str(model_dir), "--pairs", "stripes:dots"])
    assert unmixable.value.code == 2
    with pytest.raises(SystemExit):
        mix_sheet.main([*args, "--pairs", "waves"])
