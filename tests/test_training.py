"""Training: model contract, loss networks, data, and short real CPU runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import make_painting
from training import checkpoint, data
from training.errors import UsageError
from training.model import PRESETS, ModelConfig, TransformerNet
from training.train import TrainConfig, train
from training.vgg import VGG16Features, build_loss_net

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(photo_dir: Path, style_path: Path, out: Path, **overrides) -> TrainConfig:
    cfg = dict(
        style=str(style_path), data=str(photo_dir), out=str(out), steps=20, batch_size=2,
        image_size=64, style_size=96, loss_net="random", workers=0, log_every=1,
        checkpoint_every=10, sample_every=10,
    )  # fmt: skip
    return TrainConfig(**{**cfg, **overrides})


@pytest.fixture(scope="module")
def tiny_run(photo_dir, style_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(photo_dir, style_path, out))
    return out


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("height,width", [(97, 131), (1, 1), (1, 7), (5, 4), (64, 64)])
def test_output_has_input_size_and_no_nans(height, width):
    model = TransformerNet().eval()
    x = torch.rand(2, 3, height, width) * 255
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_config_fields_change_the_network():
    small = TransformerNet(ModelConfig(base_channels=8, num_residual_blocks=2))
    assert len(small.residuals) == 2
    assert small.encoder[0][1].out_channels == 8


def test_tiny_run_lowers_the_loss_and_writes_everything(tiny_run):
    records = read_log(tiny_run)
    assert [r["step"] for r in records] == list(range(1, 21))
    for r in records:
        assert {"content_loss", "style_loss", "tv_loss", "total_loss", "images_per_s"} <= set(r)
        assert all(v == v for v in r.values())  # no NaN
    first = sum(r["total_loss"] for r in records[:3]) / 3
    last = sum(r["total_loss"] for r in records[-3:]) / 3
    assert last < 0.8 * first
    assert (tiny_run / "step_10.pt").is_file() and (tiny_run / "last.pt").is_file()
    assert (tiny_run / "samples" / "step_20.jpg").stat().st_size > 0
    assert (tiny_run / "loss.png").stat().st_size > 0


def test_checkpoint_is_self_describing(tiny_run, style_path):
    ckpt = checkpoint.load(tiny_run / "last.pt")
    assert ckpt["step"] == 20
    assert ckpt["loss_net"] == "random-vgg16"
    assert ckpt["style_name"] == "stripes"
    assert (
        ckpt["style_image_sha256"]
        == __import__("hashlib").sha256(style_path.read_bytes()).hexdigest()
    )
    assert ckpt["train_config"]["image_size"] == 64
    assert "optimizer" in ckpt and "model_config" in ckpt


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = TransformerNet(ModelConfig(base_channels=8, num_residual_blocks=1))
    torch.nn.init.normal_(
        model.encoder[0][2].weight
    )  # not the default init, so a reload must carry it
    opt = torch.optim.Adam(model.parameters())
    checkpoint.save(
        tmp_path / "c.pt", model=model, optimizer=opt, step=3, model_config=model.config.to_dict(),
        style_name="s", style_image_sha256="0" * 64, loss_net="random-vgg16",
    )  # fmt: skip
    loaded, meta = checkpoint.load_model(tmp_path / "c.pt")
    x = torch.rand(1, 3, 37, 41) * 255
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))
    assert meta["step"] == 3


def test_resume_continues_step_and_optimizer(tiny_run, photo_dir, style_path, tmp_path):
    out = tmp_path / "resumed"
    train(tiny_config(photo_dir, style_path, out, steps=25, resume=str(tiny_run / "step_10.pt")))
    steps = [r["step"] for r in read_log(out)]
    assert steps == list(range(11, 26))
    ckpt = checkpoint.load(out / "last.pt")
    assert ckpt["step"] == 25
    assert ckpt["optimizer"]["state"][0]["step"] == 25  # Adam's own counter carried over


def test_unreadable_files_are_skipped_with_a_warning(photo_dir, tmp_path, caplog):
    d = tmp_path / "mixed" / "nested"
    d.mkdir(parents=True)
    good = (photo_dir / "photo_0.jpg").read_bytes()
    (d / "good.jpg").write_bytes(good)
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "text.png").write_text("not an image")
    (d / "notes.txt").write_text("ignored: not an image extension")
    found = data.find_images(tmp_path / "mixed")
    assert [p.name for p in found] == ["good.jpg"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("skipping unreadable image" in w for w in warnings) == 2
    assert any("skipped 2 of 3" in w for w in warnings)


def test_dataset_crops_are_square_float_0_255(photo_dir):
    ds = data.PhotoDataset(data.find_images(photo_dir), 48)
    x = ds[0]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 255 and x.max() > 1  # 0..255, not 0..1


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.train", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("case", ["empty_data", "missing_style", "no_imagenet_weights"])
def test_user_errors_are_one_line_and_nonzero(case, tmp_path, photo_dir, style_path):
    (tmp_path / "empty").mkdir()
    args = {
        "empty_data": ["--data", str(tmp_path / "empty"), "--style", str(style_path), "--loss-net", "random"],
        "missing_style": ["--data", str(photo_dir), "--style", str(tmp_path / "nope.jpg"), "--loss-net", "random"],
        "no_imagenet_weights": ["--data", str(photo_dir), "--style", str(style_path),
                                "--vgg-weights", str(tmp_path / "vgg16.pth")],
    }[case]  # fmt: skip
    result = run_cli(*args, "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def _torchvision_format_state(net: VGG16Features) -> dict:
    state = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the full file has these; they are ignored
    return state


def test_imagenet_loss_net_loads_torchvision_weights_from_file(tmp_path):
    source = build_loss_net("random", seed=7)
    torch.save(_torchvision_format_state(source), tmp_path / "vgg16.pth")
    net = build_loss_net("imagenet", tmp_path / "vgg16.pth")
    assert net.name == "imagenet-vgg16"
    x = torch.rand(1, 3, 32, 32) * 255
    for name, feat in net(x).items():
        assert torch.equal(feat, source(x)[name])
    assert not any(p.requires_grad for p in net.parameters())


def test_imagenet_loss_net_uses_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    source = build_loss_net("random", seed=3)
    torch.save(_torchvision_format_state(source), cache / "vgg16-397923af.pth")
    x = torch.rand(1, 3, 16, 16) * 255
    assert torch.equal(build_loss_net("imagenet")(x)["relu4_3"], source(x)["relu4_3"])


def test_incomplete_weights_file_is_a_clear_error(tmp_path):
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(UsageError, match="torchvision"):
        build_loss_net("imagenet", tmp_path / "partial.pth")


def test_random_loss_net_is_seeded_and_logged(caplog):
    x = torch.rand(1, 3, 16, 16) * 255
    a, b = build_loss_net("random", seed=1), build_loss_net("random", seed=1)
    assert torch.equal(a(x)["relu2_2"], b(x)["relu2_2"])
    assert not torch.equal(a(x)["relu2_2"], build_loss_net("random", seed=2)(x)["relu2_2"])
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)


def test_two_process_gloo_run(photo_dir, style_path, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", "-m", "training.train",
         "--style", str(style_path), "--data", str(photo_dir), "--out", str(out),
         "--steps", "4", "--batch-size", "1", "--image-size", "48", "--style-size", "64",
         "--loss-net", "random", "--workers", "0", "--log-every", "1", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # rank 0 alone writes: one record per step, not two
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4]
    assert checkpoint.load(out / "last.pt")["step"] == 4
    assert "batch 1 x 2" in result.stderr


def test_random_multiscale_loss_net():
    net = build_loss_net("random-multiscale", seed=0)
    assert net.name == "random-multiscale"
    for w in net.banks:  # zero-mean, unit-norm random filters
        assert w.mean(dim=(1, 2, 3)).abs().max() < 1e-5
        assert torch.allclose(w.flatten(1).norm(dim=1), torch.ones(w.shape[0]), atol=1e-5)
    features = net(torch.rand(1, 3, 64, 64) * 255)
    assert set(features) == set(net.layer_names)
    assert features["s2_15"].shape[1] == 128 and features["relu3_3"].shape[1] == 256
    again = build_loss_net("random-multiscale", seed=0)(torch.ones(1, 3, 64, 64))
    assert torch.equal(net(torch.ones(1, 3, 64, 64))["s0_3"], again["s0_3"])


def test_multiscale_run_is_recorded(photo_dir, style_path, tmp_path):
    cfg = tiny_config(photo_dir, style_path, tmp_path, steps=3, loss_net="random-multiscale")
    ckpt = checkpoint.load(train(cfg))
    assert ckpt["loss_net"] == "random-multiscale"
    assert ckpt["train_config"]["content_layer"] == "relu3_3"  # the net's default, resolved
    assert all(r["total_loss"] == r["total_loss"] for r in read_log(tmp_path))


def test_identity_warmup_learns_to_reproduce_the_photo(photo_dir, style_path, tmp_path):
    cfg = tiny_config(photo_dir, style_path, tmp_path, steps=14, identity_warmup_steps=10, lr=3e-3)
    train(cfg)
    records = read_log(tmp_path)
    warmup = [r for r in records if r.get("phase") == "identity_warmup"]
    assert [r["step"] for r in warmup] == list(range(1, 11))
    assert warmup[-1]["reconstruction_loss"] < 0.5 * warmup[0]["reconstruction_loss"]
    assert all("style_loss" in r for r in records[10:])  # then the perceptual loss takes over


def test_fast_arch_distills_from_a_teacher(photo_dir, style_path, tmp_path, tiny_run):
    cfg = tiny_config(
        photo_dir, style_path, tmp_path, steps=12, arch="fast", base_channels=4,
        residual_blocks=1, teacher=str(tiny_run / "last.pt"), lr=3e-3,
    )  # fmt: skip
    ckpt = checkpoint.load(train(cfg))
    assert ckpt["model_config"] == {"arch": "fast", "base_channels": 4, "num_residual_blocks": 1}
    assert ckpt["distilled_from"] == {"arch": "johnson", "step": 20, "loss_net": "random-vgg16"}
    losses = [r["distill_loss"] for r in read_log(tmp_path)]
    assert all(math.isfinite(v) for v in losses) and min(losses[-3:]) < losses[0]


def test_teacher_of_another_style_is_refused(photo_dir, tmp_path, tiny_run):
    other = tmp_path / "other.png"
    make_painting(size=64).save(other)
    cfg = tiny_config(photo_dir, other, tmp_path / "run", teacher=str(tiny_run / "last.pt"))
    with pytest.raises(UsageError, match="another style"):
        train(cfg)


@pytest.mark.parametrize("height,width", [(1, 1), (9, 17), (97, 131), (64, 64)])
def test_fast_arch_keeps_any_size(height, width):
    model = TransformerNet(PRESETS["fast"]).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, height, width) * 255)
    assert y.shape == (1, 3, height, width) and torch.isfinite(y).all()
