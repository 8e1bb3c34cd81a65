"""Feature decoders for arbitrary styles (training/decoders.py, training/train_decoder.py)."""

from __future__ import annotations

import json

import pytest
import torch

from training.decoders import TAPS, Decoder, DecoderConfig
from training.efficientnet import build_efficientnet_lite0
from training.train_decoder import DecoderTrainConfig, encode, main, train


@pytest.mark.parametrize("level", list(TAPS))
@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_a_decoder_gives_back_the_photo_size_without_nans(level, size):
    encoder = build_efficientnet_lite0().eval()
    x = torch.rand(1, 3, *size) * 255
    with torch.no_grad():
        f = encode(encoder, x, level)[level]
        y = Decoder(DecoderConfig(level, width=8))(f, size)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_training_lowers_the_reconstruction_loss_and_resumes(photo_dir, tmp_path):
    cfg = DecoderTrainConfig(
        level="s4", data=str(photo_dir), out=str(tmp_path), steps=30, batch_size=2,
        image_size=64, width=8, lr=3e-3, workers=0, save_every=10,
    )  # fmt: skip
    train(cfg)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first, last = sum(r["total"] for r in log[:5]) / 5, sum(r["total"] for r in log[-5:]) / 5
    assert last < 0.8 * first
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 30 and state["decoder_config"] == {
        "level": "s4",
        "width": 8,
        "max_width": 128,
    }
    train(DecoderTrainConfig(**{**cfg.__dict__, "steps": 32}))  # resumes: two more steps
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 32


def test_an_unknown_level_is_a_one_line_error(photo_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--level", "s64", "--data", str(photo_dir), "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --level 's64'")
