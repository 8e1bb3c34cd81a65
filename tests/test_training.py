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
from training import checkpoint, data, losses
from training.efficientnet import EfficientNetLite0, SamePadConv, build_efficientnet_lite0
from training.errors import UsageError
from training.loss_nets import DEFAULTS, build_loss_net
from training.losses import PerceptualLoss
from training.model import PRESETS, ModelConfig, TransformerNet, mirror_edges
from training.train import TrainConfig, train
from training.vgg import VGG16Features

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(photo_dir: Path, style_path: Path, out: Path, **overrides) -> TrainConfig:
    cfg = dict(
        style=[str(style_path)], data=str(photo_dir), out=str(out), steps=20, batch_size=2,
        image_size=64, style_size=96, workers=0, log_every=1,
        checkpoint_every=10, sample_every=10, lr=3e-4,
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


@pytest.mark.parametrize("height,width", [(1, 1), (3, 40), (20, 20), (30, 50)])
def test_mirror_extends_every_side_by_the_image_itself(height, width):
    x = torch.arange(height * width, dtype=torch.float32).view(1, 1, height, width)
    y, top, left = mirror_edges(x, 24)
    eh, ew = min(24, height), min(24, width)  # a small image lends all it has
    assert (top, left) == (eh, ew)
    assert y.shape == (1, 1, height + 2 * eh, width + 2 * ew)
    inner = y[..., top : top + height, :]
    assert torch.equal(inner[..., left : left + width], x)
    assert torch.equal(inner[..., :left], x[..., :ew].flip(-1))
    assert torch.equal(inner[..., left + width :], x[..., width - ew :].flip(-1))
    assert torch.equal(y[..., :top, :], y[..., top : 2 * top, :].flip(-2))
    assert torch.equal(
        y[..., top + height :, :], y[..., height + top - eh : height + top, :].flip(-2)
    )


def test_config_fields_change_the_network():
    small = TransformerNet(ModelConfig(base_channels=8, num_residual_blocks=2))
    assert len(small.residuals) == 2
    assert small.encoder[0][1].out_channels == 8


def held_out_loss(model: torch.nn.Module, photo_dir: Path, style_path: Path) -> float:
    """The training objective on fixed centre crops: the per-step log is too noisy (random
    crops and loss jitter) to show 20 steps of progress."""
    d = DEFAULTS["efficientnet-lite0"]
    criterion = PerceptualLoss(
        build_loss_net("efficientnet-lite0"), data.load_style_image(style_path, 96),
        content_layer=d.content_layer, style_layers=d.style_layers,
        content_weight=d.content_weight, style_weight=d.style_weight,
        style_statistic=d.style_statistic,
    ).eval()  # fmt: skip
    photos = data.center_crops(data.find_images(photo_dir), 64)
    with torch.no_grad():
        return criterion(model.eval()(photos), photos)["total_loss"].item()


def test_tiny_run_lowers_the_loss_and_writes_everything(tiny_run, photo_dir, style_path):
    records = read_log(tiny_run)
    assert [r["step"] for r in records] == list(range(1, 21))
    for r in records:
        assert {"content_loss", "style_loss", "tv_loss", "total_loss", "images_per_s"} <= set(r)
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float))
    trained, _ = checkpoint.load_model(tiny_run / "last.pt")
    torch.manual_seed(0)
    untrained = TransformerNet(ModelConfig(**checkpoint.load(tiny_run / "last.pt")["model_config"]))
    assert held_out_loss(trained, photo_dir, style_path) < 0.85 * held_out_loss(
        untrained, photo_dir, style_path
    )
    assert (tiny_run / "step_10.pt").is_file() and (tiny_run / "last.pt").is_file()
    assert (tiny_run / "samples" / "step_20.jpg").stat().st_size > 0
    assert (tiny_run / "loss.png").stat().st_size > 0


def test_checkpoint_is_self_describing(tiny_run, style_path):
    ckpt = checkpoint.load(tiny_run / "last.pt")
    assert ckpt["step"] == 20
    assert ckpt["loss_net"] == "imagenet-efficientnet-lite0"
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
        style_name="s", style_image_sha256="0" * 64, loss_net="imagenet-efficientnet-lite0",
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


@pytest.mark.parametrize(
    "case", ["empty_data", "missing_style", "no_imagenet_weights", "unknown_loss_net"]
)
def test_user_errors_are_one_line_and_nonzero(case, tmp_path, photo_dir, style_path):
    (tmp_path / "empty").mkdir()
    args = {
        "empty_data": ["--data", str(tmp_path / "empty"), "--style", str(style_path)],
        "missing_style": ["--data", str(photo_dir), "--style", str(tmp_path / "nope.jpg")],
        "no_imagenet_weights": ["--data", str(photo_dir), "--style", str(style_path),
                                "--loss-net", "vgg16", "--loss-weights", str(tmp_path / "vgg16.pth")],
        "unknown_loss_net": ["--data", str(photo_dir), "--style", str(style_path), "--loss-net", "random"],
    }[case]  # fmt: skip
    result = run_cli(*args, "--out", str(tmp_path / "run"), "--steps", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def _seeded_vgg16(seed: int) -> VGG16Features:
    """Stand-in weights in torchvision's layout: these tests are about loading, not quality."""
    torch.manual_seed(seed)
    return VGG16Features("source").eval()


def _torchvision_format_state(net: VGG16Features) -> dict:
    state = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the full file has these; they are ignored
    return state


def test_vgg16_loss_net_loads_torchvision_weights_from_file(tmp_path):
    source = _seeded_vgg16(7)
    torch.save(_torchvision_format_state(source), tmp_path / "vgg16.pth")
    net = build_loss_net("vgg16", tmp_path / "vgg16.pth")
    assert net.name == "imagenet-vgg16"
    x = torch.rand(1, 3, 32, 32) * 255
    for name, feat in net(x).items():
        assert torch.equal(feat, source(x)[name])
    assert not any(p.requires_grad for p in net.parameters())


def test_vgg16_loss_net_uses_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    source = _seeded_vgg16(3)
    torch.save(_torchvision_format_state(source), cache / "vgg16-397923af.pth")
    x = torch.rand(1, 3, 16, 16) * 255
    assert torch.equal(build_loss_net("vgg16")(x)["relu4_3"], source(x)["relu4_3"])


def test_incomplete_weights_file_is_a_clear_error(tmp_path):
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(UsageError, match="torchvision"):
        build_loss_net("vgg16", tmp_path / "partial.pth")
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial_eff.pth")
    with pytest.raises(UsageError, match="EfficientNet-Lite0"):
        build_loss_net("efficientnet-lite0", tmp_path / "partial_eff.pth")


EVAL = ROOT.parent / "shared" / "data" / "eval"


@pytest.fixture(scope="module")
def efficientnet() -> EfficientNetLite0:
    return build_loss_net("efficientnet-lite0")


@pytest.mark.skipif(not (EVAL / "kodim23.png").is_file(), reason="needs ../shared/data/eval")
@pytest.mark.parametrize(
    ("photo", "classes"), [("kodim23", {88}), ("kodim22", {425}), ("kodim14", {693})]
)
def test_efficientnet_classifies_real_photos(efficientnet, photo, classes):
    """Wrong padding, normalisation or block layout would still run, but misclassify."""
    from PIL import ImageOps

    img = ImageOps.fit(data.load_rgb(EVAL / f"{photo}.png"), (224, 224))
    with torch.no_grad():
        probs = efficientnet.classify(data.to_tensor(img)[None]).softmax(-1)[0]
    assert int(probs.argmax()) in classes  # 88 macaw, 425 barn, 693 paddle
    assert float(probs.max()) > 0.5


def test_efficientnet_taps_scales_and_freezing(efficientnet):
    x = torch.rand(2, 3, 96, 128) * 255
    features = efficientnet(x)
    assert list(features) == list(efficientnet.layer_names)
    # s1, the input's 3x3 neighbourhoods: 27 channels over the valid positions, in [-1, 1]
    s1 = features.pop("s1")
    assert s1.shape == (2, 27, 94, 126)
    # channel c * 9 + 3 * dy + dx: colour c of the neighbour at (dy, dx) in the 3x3 window
    assert torch.equal(s1[:, 4::9], x[:, :, 1:-1, 1:-1] / 127.5 - 1.0)  # the centre, RGB
    assert torch.equal(s1[:, 0::9, 1:, 1:], s1[:, 4::9, :-1, :-1])  # its top-left neighbour
    channels = {"s2": 96, "s4": 144, "s8": 240, "s16": 672, "s32": 1152}
    for name, f in features.items():
        scale = int(name[1:])
        assert f.shape == (2, channels[name], 96 // scale, 128 // scale)
        assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 6  # post-ReLU6
    assert not any(p.requires_grad for p in efficientnet.parameters())
    assert efficientnet.name == "imagenet-efficientnet-lite0"


def test_same_padding_matches_tensorflow_for_odd_and_even_sizes():
    """TF "SAME": output ceil(n / stride), the extra pad on the bottom/right."""
    conv = SamePadConv(1, 1, 3, 2, bias=False)
    torch.nn.init.ones_(conv.weight)
    for n in (7, 8):
        x = torch.ones(1, 1, n, n)
        y = conv(x)
        assert y.shape[-1] == -(-n // 2)
        # even n pads only after; so the top-left output sees a full 3x3 window of ones
        assert y[0, 0, 0, 0] == (9 if n % 2 == 0 else 4)


def test_efficientnet_weights_come_from_the_package():
    net = build_efficientnet_lite0()
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(4.65e6, rel=0.02)


def test_two_process_gloo_run(photo_dir, style_path, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--standalone", "-m", "training.train",
         "--style", str(style_path), "--data", str(photo_dir), "--out", str(out),
         "--steps", "4", "--batch-size", "1", "--image-size", "48", "--style-size", "64",
         "--workers", "0", "--log-every", "1", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # rank 0 alone writes: one record per step, not two
    assert [r["step"] for r in read_log(out)] == [1, 2, 3, 4]
    assert checkpoint.load(out / "last.pt")["step"] == 4
    assert "batch 1 x 2" in result.stderr


def test_run_records_the_loss_settings_it_used(photo_dir, style_path, tmp_path):
    cfg = tiny_config(photo_dir, style_path, tmp_path, steps=3)
    ckpt = checkpoint.load(train(cfg))
    assert ckpt["loss_net"] == "imagenet-efficientnet-lite0"
    assert ckpt["train_config"]["content_layer"] == "s4"
    assert ckpt["styles"][0]["style_layers"].startswith("s1:")  # resolved, per style
    assert all(math.isfinite(r["total_loss"]) for r in read_log(tmp_path))


def test_identity_warmup_learns_to_reproduce_the_photo(photo_dir, style_path, tmp_path):
    cfg = tiny_config(photo_dir, style_path, tmp_path, steps=14, identity_warmup_steps=10, lr=1e-3)
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
    assert ckpt["model_config"] == {
        "arch": "fast",
        "base_channels": 4,
        "num_residual_blocks": 1,
        "num_styles": 1,
    }
    assert ckpt["distilled_from"] == {
        "arch": "johnson",
        "step": 20,
        "loss_net": "imagenet-efficientnet-lite0",
    }
    losses = [r["distill_loss"] for r in read_log(tmp_path)]
    assert all(math.isfinite(v) for v in losses) and min(losses[-3:]) < losses[0]


def test_teacher_of_another_style_is_refused(photo_dir, tmp_path, tiny_run):
    other = tmp_path / "other.png"
    make_painting(size=64).save(other)
    cfg = tiny_config(photo_dir, other, tmp_path / "run", teacher=str(tiny_run / "last.pt"))
    with pytest.raises(UsageError, match="trained on the styles"):
        train(cfg)


@pytest.mark.parametrize("height,width", [(1, 1), (9, 17), (97, 131), (64, 64)])
def test_fast_arch_keeps_any_size(height, width):
    model = TransformerNet(PRESETS["fast"]).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, height, width) * 255)
    assert y.shape == (1, 3, height, width) and torch.isfinite(y).all()


def test_optimize_writes_one_tile_per_setting(tmp_path, style_path):
    from PIL import Image

    from tests.conftest import make_photo
    from training import optimize

    photo = tmp_path / "photo.png"
    make_photo(64, 48).save(photo)
    out = tmp_path / "sheet.jpg"
    argv = ["--photo", str(photo), "--style", str(style_path), "--out", str(out), "--size", "64",
            "--steps", "5", "--style-size", "64", "--content-weight", "1,4", "--columns", "4"]  # fmt: skip
    assert optimize.main(argv) == 0
    sheet = Image.open(out)
    assert sheet.size == (4 * 64, 48)  # photo, painting, one tile per content weight


def test_optimize_moves_pixels_towards_the_style(style_path):
    from tests.conftest import make_photo
    from training import optimize

    net = build_loss_net("efficientnet-lite0")
    photo = data.to_tensor(make_photo(64, 48))[None]
    setting = optimize.Setting("s4", 1.0, 1.0, 64, "s2,s4,s8")
    result = optimize.optimize(net, photo, style_path, setting, steps=8)
    assert result.shape == photo.shape and torch.isfinite(result).all()
    assert result.min() >= 0 and result.max() <= 255
    assert (result - photo).abs().mean() > 1.0  # it did something


def test_optimize_unknown_layer_is_one_line(tmp_path, style_path, capsys):
    from training import optimize

    argv = ["--photo", str(style_path), "--style", str(style_path), "--out", str(tmp_path / "x.jpg"),
            "--content-layer", "relu9"]  # fmt: skip
    assert optimize.main(argv) == 2
    assert "unknown layers ['relu9']" in capsys.readouterr().err


def test_cov_statistic_sees_the_contrast_a_raw_gram_misses(style_path):
    """Why `cov` is the default: a washed-out copy of the painting (halfway to its mean colour)
    nearly matches the painting's raw Grams, which are dominated by the channel means, but not
    its covariances."""
    net = build_loss_net("efficientnet-lite0")
    painting = data.load_style_image(style_path, 96)  # (1, 3, H, W)
    hazy = 0.5 * painting + 0.5 * painting.mean((2, 3), keepdim=True)
    taps = dict.fromkeys(("s2", "s4"), 1.0)
    relative = {}
    for statistic in losses.STYLE_STATISTICS:
        loss = losses.PerceptualLoss(
            net, painting, content_layer="s4", style_layers=taps, content_weight=0.0,
            style_weight=1.0, style_statistic=statistic,
        )  # fmt: skip
        loss.eval()
        with torch.no_grad():
            same = loss(painting, painting)["style_loss"].item()
            relative[statistic] = loss(hazy, painting)["style_loss"].item()
        assert same < 1e-6
    assert relative["cov"] > 3 * relative["gram"], relative


def test_s1_tap_sees_the_muted_palette_the_strided_taps_barely_weigh(style_path):
    """Why `s1` is in the default: a copy of the painting with 40 % of its colour (same
    luminance) is, relative to the painting, far further off in `s1`'s statistics than in
    `s2`'s, the finest tap the network itself has."""
    net = build_loss_net("efficientnet-lite0")
    painting = data.load_style_image(style_path, 96)  # (1, 3, H, W)
    muted = 0.4 * painting + 0.6 * painting.mean(1, keepdim=True)
    relative = {}
    for tap in ("s1", "s2"):
        loss = losses.PerceptualLoss(
            net, painting, content_layer="s4", style_layers={tap: 1.0}, content_weight=0.0,
            style_weight=1.0, style_statistic="cov",
        ).eval()  # fmt: skip
        with torch.no_grad():
            assert loss(painting, painting)["style_loss"].item() < 1e-6
            relative[tap] = loss(muted, painting)["style_loss"].item()
    assert relative["s1"] > 2 * relative["s2"], relative


def test_every_border_pixel_is_in_the_loss_on_every_step(style_path):
    """The loss sees the whole image, borders included, whatever phase the jitter draws: a
    random crop left the top rows and left columns out on most steps, and the generator
    painted a band there."""
    net = build_loss_net("efficientnet-lite0")
    painting = data.load_style_image(style_path, 96)  # (1, 3, H, W)
    loss = PerceptualLoss(
        net, painting, content_layer="s4", style_layers={"s1": 1.0, "s2": 1.0},
        content_weight=1.0, style_weight=1.0, jitter=4,
    )  # fmt: skip
    photo = torch.rand(1, 3, 48, 56) * 255
    for mode in (loss.train, loss.eval):
        mode()
        for _ in range(6):
            y = (torch.rand(1, 3, 48, 56) * 255).requires_grad_(True)
            loss(y, photo)["total_loss"].backward()
            g = y.grad.abs().sum(1)[0]  # (H, W)
            edges = torch.stack([g[0], g[-1]]).min(), torch.stack([g[:, 0], g[:, -1]]).min()
            assert min(e.item() for e in edges) > 0 and torch.isfinite(g).all()
    assert loss.frame_padding() == (loss.margin,) * 4  # eval: no jitter, same on every side


def test_optimize_labels_tell_swept_style_taps_apart():
    from training import optimize

    a = optimize.Setting("s4", 4.0, 1.0, 512, "s1:1,s2:1")
    b = optimize.Setting("s4", 4.0, 1.0, 512, "s2:1,s4:1")
    assert optimize.label(a) != optimize.label(b)


def test_starter_data_is_a_training_set_from_a_fresh_clone(tmp_path):
    """The quick start's data needs nothing but the repository: generated photos, and the
    painting a bundled model carries."""
    from PIL import Image

    from training import starter_data

    assert starter_data.main([str(tmp_path), "--count", "5"]) == 0
    assert len(data.find_images(tmp_path / "photos")) == 5
    painting = Image.open(tmp_path / "starry_night.jpg")
    assert max(painting.size) == 256 and painting.mode == "RGB"
    assert starter_data.main([str(tmp_path), "--painting", "no_such_style"]) == 2
