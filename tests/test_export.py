"""Export: real checkpoints to ONNX, parity with PyTorch, metadata, and the parity gate."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from export import onnx_export
from export.parity import ParityError, check_parity
from export.wrapper import UInt8Stylizer
from training.checkpoint import load_model


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
        expected = UInt8Stylizer(net)(torch.from_numpy(image)).numpy()
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
