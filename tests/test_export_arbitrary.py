"""The arbitrary-style graphs (export/arbitrary.py) from decoders trained by our own code."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.arbitrary import export_arbitrary, main
from training.train_decoder import DecoderTrainConfig, train


@pytest.fixture(scope="module")
def decoders(photo_dir, tmp_path_factory):
    paths = []
    for level in ("s16", "s4"):
        out = tmp_path_factory.mktemp(f"decoder_{level}")
        cfg = DecoderTrainConfig(
            level=level, data=str(photo_dir), out=str(out), steps=3, batch_size=2,
            image_size=64, width=8, max_width=32, workers=0,
        )  # fmt: skip
        paths.append(train(cfg))
    return paths


def test_the_graphs_match_pytorch_and_carry_their_metadata(decoders, tmp_path):
    written = export_arbitrary(decoders, tmp_path)
    assert [p.name for p in written] == ["encoder.onnx", "decoder_s16.onnx", "decoder_s4.onnx"]
    meta = {p.name: {e.key: e.value for e in onnx.load(str(p)).metadata_props} for p in written}
    assert json.loads(meta["encoder.onnx"]["levels"]) == ["s16", "s4"]
    assert meta["decoder_s4.onnx"]["level"] == "s4" and meta["decoder_s4.onnx"]["method"] == "wct"
    assert meta["decoder_s16.onnx"]["training_steps"] == "3"


def test_a_photo_goes_through_encoder_and_decoder_at_its_own_size(decoders, tmp_path):
    export_arbitrary(decoders, tmp_path)
    encoder = ort.InferenceSession(str(tmp_path / "encoder.onnx"))
    photo = np.random.default_rng(0).integers(0, 256, (1, 160, 224, 3), np.uint8)
    s16, s4 = encoder.run(None, {"image": photo})
    assert s16.shape == (1, 672, 10, 14) and s4.shape == (1, 144, 40, 56)
    for level, features in (("s16", s16), ("s4", s4)):
        decoder = ort.InferenceSession(str(tmp_path / f"decoder_{level}.onnx"))
        (image,) = decoder.run(None, {f"features_{level}": features})
        assert image.shape == photo.shape and image.dtype == np.uint8


def test_a_checkpoint_that_is_not_a_decoder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as stop:
        main(["--decoder", str(tmp_path / "x.pt"), "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: --decoder")
