"""Export: real checkpoints to ONNX, parity with PyTorch, metadata, and the parity gate."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from devtools.images import make_photo
from export import add_painting, onnx_export
from export.painting import PAINTING_KEY, painting_props, painting_thumbnail
from export.parity import ParityError, check_parity
from export.wrapper import UInt8Stylizer
from training.checkpoint import load as checkpoint_load
from training.checkpoint import load_model
from training.errors import UsageError


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "stripes.onnx"
    report = onnx_export.write_model(
        tiny_checkpoint, path, name="stripes", title="Stripes", artist="A. Painter"
    )
    return path, report


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_parity_holds_on_every_case(exported):
    _, report = exported
    assert len(report) >= 4
    assert {r["shape"] for r in report} >= {"1x97x131x3", "2x160x224x3"}
    assert all(r["max_diff"] <= 1 for r in report)


def test_graph_contract(exported):
    path, _ = exported
    sess = session(path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type) == ("image", "tensor(uint8)")
    assert (out.name, out.type) == ("stylized", "tensor(uint8)")
    assert inp.shape[3] == 3 and all(isinstance(d, str) for d in inp.shape[:3])  # dynamic N, H, W
    assert onnx.load(str(path)).opset_import[0].version >= 17


@pytest.mark.parametrize("shape", [(1, 97, 131, 3), (1, 1, 1, 3), (1, 1, 7, 3), (1, 5, 4, 3)])
def test_any_size_comes_back_the_same_size(exported, tiny_checkpoint, shape):
    path, _ = exported
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    got = session(path).run(None, {"image": image})[0]
    assert got.shape == shape and got.dtype == np.uint8
    if min(shape[1:3]) >= 8:
        # Below 8 px the 1/4-scale maps hold a few values, where instance norm magnifies float
        # rounding; parity is a promise for photos, sizes alone for degenerate inputs.
        net, _ = load_model(tiny_checkpoint)
        expected = UInt8Stylizer(net)(torch.from_numpy(image))[0].numpy()
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_batch_of_two_matches_single_images(exported):
    path, _ = exported
    batch = np.random.default_rng(1).integers(0, 256, (2, 40, 56, 3), dtype=np.uint8)
    sess = session(path)
    together = sess.run(None, {"image": batch})[0]
    for i in range(2):
        alone = sess.run(None, {"image": batch[i : i + 1]})[0]
        assert np.abs(together[i].astype(int) - alone[0].astype(int)).max() <= 1


def test_metadata_round_trips(exported, tiny_checkpoint, style_path):
    path, _ = exported
    meta = session(path).get_modelmeta().custom_metadata_map
    ckpt = torch.load(tiny_checkpoint, weights_only=True)
    assert meta["name"] == "stripes"
    assert meta["title"] == "Stripes"
    assert meta["artist"] == "A. Painter"
    assert meta["style_image_sha256"] == hashlib.sha256(style_path.read_bytes()).hexdigest()
    assert meta["training_steps"] == str(ckpt["step"]) == "8"
    assert meta["loss_net"] == "imagenet-efficientnet-lite0"  # the loss network says so
    assert meta["image_size"] == "64"
    assert meta["precision"] == "fp32"
    for key in ("created", "project_version", "arch", "model_config"):
        assert meta[key]
    loss = json.loads(meta["loss_settings"])  # resolved from the defaults, as trained
    assert loss["content_layer"] == ckpt["train_config"]["content_layer"]
    assert loss["style_layers"] == ckpt["styles"][0]["style_layers"]
    assert loss["style_statistic"] in ("gram", "cov")
    # the frame around images before the loss network, so a reader can retrain the same way
    assert loss["loss_margin"] == ckpt["train_config"]["loss_margin"] == 8
    assert loss["loss_jitter"] == ckpt["train_config"]["loss_jitter"]


def _tamper(path) -> None:
    """Change one weight: one element of the output convolution's bias."""
    model = onnx.load(str(path))
    init = [t for t in model.graph.initializer if t.name.endswith("bias")][-1]
    values = numpy_helper.to_array(init).copy()
    values.flat[0] += 0.5  # in the network's -1..1 output scale: ~64 grey levels
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(path))


def test_tampered_model_fails_parity(exported, tiny_checkpoint, tmp_path):
    path, _ = exported
    tampered = tmp_path / "tampered.onnx"
    tampered.write_bytes(path.read_bytes())
    _tamper(tampered)
    net, _ = load_model(tiny_checkpoint)
    with pytest.raises(ParityError, match="max pixel difference"):
        check_parity(net, tampered)


def test_failed_parity_leaves_no_file_and_exits_nonzero(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    real_export = onnx_export.export_onnx

    def broken_exporter(net, path, **kw):
        real_export(net, path, **kw)
        _tamper(path)

    monkeypatch.setattr(onnx_export, "export_onnx", broken_exporter)
    out = tmp_path / "m.onnx"
    assert onnx_export.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    assert "parity failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither the model nor a temp file


def test_fp16_export(tiny_checkpoint, tmp_path, exported):
    out = tmp_path / "half.onnx"
    report = onnx_export.write_model(tiny_checkpoint, out, fp16=True)
    assert all(r["max_diff"] <= 3 for r in report)
    sess = session(out)
    assert sess.get_modelmeta().custom_metadata_map["precision"] == "fp16"
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    assert out.stat().st_size < 0.6 * exported[0].stat().st_size  # weights really are 16-bit


def test_cli_rejects_old_opset_and_missing_checkpoint(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert (
        onnx_export.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--opset", "13"])
        == 1
    )
    assert onnx_export.main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--opset 13" in err and "no such file" in err
    assert not out.exists()


def test_cli_never_replaces_a_model_unless_forced(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "bundled.onnx"
    out.write_bytes(b"a bundled model")
    assert onnx_export.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    assert out.read_bytes() == b"a bundled model"
    assert "--force" in capsys.readouterr().err
    assert (
        onnx_export.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--force"]) == 0
    )
    assert out.read_bytes()[:4] != b"a bu"


# --- the painting's thumbnail (export/painting.py, python -m export.add_painting) -------------


def _props(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _jpeg(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert img.format == "JPEG"
    return img


def _mean(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)


def test_export_embeds_the_painting_it_was_trained_on(exported, style_path):
    thumb = _jpeg(_props(exported[0])[PAINTING_KEY])
    with Image.open(style_path) as painting:
        assert thumb.size == painting.size  # 96x96: never enlarged
        assert np.abs(_mean(thumb) - _mean(painting)).max() < 3


def test_painting_thumbnail_is_small(tmp_path):
    big = tmp_path / "big.png"
    make_photo(1200, 700, seed=3).save(big)
    data = base64.b64decode(painting_thumbnail(big))
    assert Image.open(io.BytesIO(data)).size == (256, 149)
    assert len(data) < 48 * 1024


def test_export_without_its_painting_warns_and_a_wrong_one_is_refused(
    tiny_checkpoint, tmp_path, caplog
):
    meta = torch.load(tiny_checkpoint, weights_only=True)
    moved = {**meta, "styles": [{**meta["styles"][0], "path": str(tmp_path / "gone.png")}]}
    with caplog.at_level(logging.WARNING, logger="export"):
        assert painting_props(moved, None) == {}
    assert "add_painting" in caplog.text and "stripes" in caplog.text
    other = tmp_path / "other.png"
    make_photo(40, 30, seed=5).save(other)
    with pytest.raises(UsageError, match="sha256"):
        painting_props(meta, other)
    out = tmp_path / "m.onnx"
    args = ["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--painting", str(other)]
    assert onnx_export.main(args) == 1
    assert not out.exists()


def test_add_painting_sets_only_that_entry_in_place(exported, style_path, tmp_path, capsys):
    model_path = tmp_path / "stripes.onnx"
    model = onnx.load(str(exported[0]))
    for p in model.metadata_props:  # as if exported without it, or with a stale one
        if p.key == PAINTING_KEY:
            p.value = "stale"
    onnx.save(model, str(model_path))
    before = onnx.load(str(model_path))

    assert add_painting.main([str(model_path), "--painting", str(style_path)]) == 0
    assert str(style_path) in capsys.readouterr().out
    after = onnx.load(str(model_path))
    assert after.graph.SerializeToString() == before.graph.SerializeToString()
    keys = [p.key for p in after.metadata_props]
    assert keys == [p.key for p in before.metadata_props] and keys.count(PAINTING_KEY) == 1
    props, old = _props(model_path), {p.key: p.value for p in before.metadata_props}
    assert {k: v for k, v in props.items() if k != PAINTING_KEY} == {
        k: v for k, v in old.items() if k != PAINTING_KEY
    }
    assert props[PAINTING_KEY] == _props(exported[0])[PAINTING_KEY]
    assert list(tmp_path.iterdir()) == [model_path]  # no temp file left
    session(model_path)  # still a model ONNX Runtime loads

    # A folder of paintings: the one whose sha256 the model names, whatever the file names.
    folder = tmp_path / "styles"
    folder.mkdir()
    make_photo(50, 40, seed=1).save(folder / "a.png")
    (folder / "zz.png").write_bytes(style_path.read_bytes())
    del after.metadata_props[keys.index(PAINTING_KEY)]
    onnx.save(after, str(model_path))
    assert add_painting.main([str(model_path), "--painting", str(folder)]) == 0
    assert props[PAINTING_KEY] == _props(model_path)[PAINTING_KEY]


def test_add_painting_refuses_a_painting_the_model_was_not_trained_on(exported, tmp_path, capsys):
    model_path = tmp_path / "stripes.onnx"
    model_path.write_bytes(exported[0].read_bytes())
    other = tmp_path / "other.png"
    make_photo(40, 30, seed=5).save(other)
    assert add_painting.main([str(model_path), "--painting", str(other)]) == 1
    assert add_painting.main([str(model_path), "--painting", str(tmp_path / "none.jpg")]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert add_painting.main([str(model_path), "--painting", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "style_image_sha256" in err and "no such file" in err and "no image in it" in err
    assert model_path.read_bytes() == exported[0].read_bytes()  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "other.png", "stripes.onnx"]


def test_a_shipped_model_unpacks_to_the_checkpoint_it_came_from(
    exported, tiny_checkpoint, tmp_path, capsys
):
    """export.unpack turns an exported model back into a checkpoint that training can resume
    (fine-tuning a shipped style without its run folder): the same weights and records."""
    from export import unpack

    path, _ = exported
    assert unpack.main([str(path), "--runs", str(tmp_path)]) == 0
    ckpt = checkpoint_load(tmp_path / "stripes" / "last.pt")
    original = torch.load(tiny_checkpoint, weights_only=True)
    assert ckpt["model"].keys() == original["model"].keys()
    assert all(torch.equal(ckpt["model"][k], original["model"][k]) for k in original["model"])
    for key in ("step", "model_config", "loss_net"):
        assert ckpt[key] == original[key]
    assert ckpt["styles"][0]["sha256"] == original["styles"][0]["sha256"]
    assert ckpt["train_config"]["content_layer"] == original["train_config"]["content_layer"]

    capsys.readouterr()
    assert unpack.main([str(onnx_export.tiles_path(path)), "--runs", str(tmp_path)]) == 1
    assert "not a style model" in capsys.readouterr().err


def test_bundle_runs_one_painting_each_where_the_command_line_says(tmp_path):
    from export.bundle import CATALOG, training_config

    kiss = next(p for p in CATALOG if p.name == "the_kiss")
    where = {"data": tmp_path / "photos", "styles_dir": tmp_path / "styles", "runs": tmp_path}
    cfg = training_config(kiss, ["--arch", "fast", "--steps", "10", "--style-size", "600"], **where)
    assert cfg.out == str(tmp_path / "the_kiss.fast") and cfg.steps == 10
    assert cfg.style == [str(tmp_path / "styles" / "the_kiss.jpg")]
    assert cfg.style_size == 600  # the command line's; resolved against the catalog in training
