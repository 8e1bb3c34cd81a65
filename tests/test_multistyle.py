"""One network, several styles: conditional instance norm, per-style loss settings, the run's
style list in its checkpoint, resuming, and stopping with SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import make_painting
from training import checkpoint, data, styles
from training.errors import UsageError
from training.hardware import autocast_dtype
from training.loss_nets import DEFAULTS
from training.model import ModelConfig, StyleNorm, TransformerNet, one_hot, upgrade_state_dict
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"arch": "fast", "base_channels": 4, "num_residual_blocks": 1}


@pytest.fixture(scope="module")
def two_paintings(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("paintings")
    make_painting().save(d / "stripes.png")
    noise = np.random.default_rng(0).integers(0, 256, (80, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "noise.png")
    return d


def config(paintings: list[str], photos: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(
        style=paintings, data=str(photos), out=str(out), steps=6, batch_size=2, image_size=64,
        style_size=96, workers=0, log_every=1, save_every=2, checkpoint_every=1000,
        sample_every=1000, arch="fast", base_channels=4, residual_blocks=1,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def test_one_hot_mix_is_that_styles_instance_norm():
    torch.manual_seed(0)
    many = TransformerNet(ModelConfig(**SMALL, num_styles=3)).eval()
    for module in many.modules():
        if isinstance(module, StyleNorm):
            module.weight.data.normal_(1, 0.3)
            module.bias.data.normal_(0, 0.3)
    one = TransformerNet(ModelConfig(**SMALL)).eval()
    # style 2's rows of every norm, in a single-style network
    one.load_state_dict(
        {k: v[2:3] if k.endswith(("2.weight", "2.bias")) and v.dim() == 2 else v
         for k, v in many.state_dict().items()}
    )  # fmt: skip
    x = torch.rand(2, 3, 40, 56) * 255
    with torch.no_grad():
        mixed = many(x, one_hot(torch.tensor([2, 2]), 3))
        assert torch.allclose(mixed, one(x), atol=1e-3)
        assert torch.allclose(many(x, torch.tensor([0.0, 0.0, 1.0])), mixed, atol=1e-3)
        other = many(x, one_hot(torch.tensor([0, 0]), 3))
    assert (other - mixed).abs().mean() > 1.0  # the styles really differ
    assert torch.isfinite(mixed).all()


def test_a_mix_blends_each_norms_scale_and_shift():
    norm = StyleNorm(5, 2)
    norm.weight.data = torch.tensor([[1.0] * 5, [3.0] * 5])
    norm.bias.data = torch.tensor([[0.0] * 5, [4.0] * 5])
    x = torch.randn(1, 5, 6, 6)
    y = norm(x, torch.tensor([0.25, 0.75]))
    expected = torch.nn.functional.instance_norm(x) * 2.5 + 3.0
    assert torch.allclose(y, expected, atol=1e-5)


def test_multi_style_network_without_a_mix_is_refused():
    with pytest.raises(ValueError, match="needs a style mix"):
        TransformerNet(ModelConfig(**SMALL, num_styles=2))(torch.zeros(1, 3, 16, 16))


def test_format_1_state_dicts_load_as_one_style():
    old = {
        k: v[0] if k.endswith(("2.weight", "2.bias")) and v.dim() == 2 else v
        for k, v in TransformerNet(ModelConfig(**SMALL)).state_dict().items()
    }
    assert any(v.dim() == 1 and k.endswith("2.weight") for k, v in old.items())
    TransformerNet(ModelConfig(**SMALL)).load_state_dict(upgrade_state_dict(old))


def test_each_painting_gets_its_catalog_settings_and_the_command_line_the_last_word(tmp_path):
    for name in ("the_kiss", "starry_night", "my_own"):
        make_painting(32).save(tmp_path / f"{name}.jpg")
    d = DEFAULTS["efficientnet-lite0"]
    none = dict(style_size=None, style_layers=None, style_weight=None, content_weight=None)
    resolved = styles.resolve([str(tmp_path)], d, **none)
    assert [s.name for s in resolved] == ["my_own", "starry_night", "the_kiss"]  # sorted by name
    by_name = {s.name: s for s in resolved}
    assert by_name["the_kiss"].style_size == 1024 and "s32" not in by_name["the_kiss"].style_layers
    assert by_name["starry_night"].style_size == 512
    assert by_name["starry_night"].content_weight == d.content_weight
    assert by_name["my_own"].artist == "unknown" and by_name["my_own"].title == "My Own"
    given = styles.resolve([str(tmp_path / "the_kiss.jpg")], d, **{**none, "style_size": 600})
    assert (
        given[0].style_size == 600 and given[0].content_weight == by_name["the_kiss"].content_weight
    )
    harder = {s.name: s for s in styles.resolve([str(tmp_path)], d, **none, style_scale=2.5)}
    for name, entry in by_name.items():  # the paintings' weights stay relative to each other
        assert harder[name].style_weight == 2.5 * entry.style_weight
        assert harder[name].content_weight == entry.content_weight
    with pytest.raises(UsageError, match="above 0"):
        styles.resolve([str(tmp_path)], d, **none, style_scale=0)


def test_a_painting_s_trim_cuts_its_edge_strip_before_the_analysis(tmp_path):
    painting = np.zeros((100, 200, 3), np.uint8)
    painting[:, 192:] = (255, 0, 0)  # a red strip down the right edge, as on The Scream's scan
    Image.fromarray(painting).save(tmp_path / "the_scream.png")
    (entry,) = styles.resolve(
        [str(tmp_path / "the_scream.png")],
        DEFAULTS["efficientnet-lite0"],
        style_size=None,
        style_layers=None,
        style_weight=None,
        content_weight=None,
    )
    assert entry.trim is not None and entry.to_dict()["trim"] == entry.trim  # recorded
    whole = data.load_style_image(entry.path, None)  # (1, 3, 100, 200)
    trimmed = data.load_style_image(entry.path, None, entry.trim)
    assert whole[0, 0].max() == 255 and trimmed[0, 0].max() == 0  # the strip is gone
    assert trimmed.shape[2] == 100 and 180 <= trimmed.shape[3] < 195


@pytest.fixture(scope="module")
def two_style_run(two_paintings, photo_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two_styles")
    order = [str(two_paintings / "stripes.png"), str(two_paintings / "noise.png")]
    train(config(order, photo_dir, out, content_weight=2.0))
    return out


def test_two_styles_train_into_one_self_describing_checkpoint(two_style_run):
    out = two_style_run
    ckpt = checkpoint.load(out / "last.pt")
    assert [s["name"] for s in ckpt["styles"]] == ["stripes", "noise"]  # the command line's order
    assert all(s["content_weight"] == 2.0 and len(s["sha256"]) == 64 for s in ckpt["styles"])
    assert ckpt["model_config"]["num_styles"] == 2 and ckpt["step"] == 6
    assert ckpt["train_config"]["precision"] in ("bf16", "fp32")
    net, _ = checkpoint.load_model(out / "last.pt")
    x = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        a, b = (net(x, one_hot(torch.tensor([i]), 2)) for i in (0, 1))
    assert torch.isfinite(a).all() and (a - b).abs().mean() > 0
    sample = Image.open(out / "samples" / "step_6.jpg")
    assert sample.size == (4 * 64, 3 * 64)  # photos, then a row per style


def test_one_onnx_file_paints_every_style_and_a_mix(two_style_run, two_paintings, tmp_path):
    import onnxruntime as ort

    from export import unpack
    from export.onnx_export import tiles_path, write_model
    from stylefn.contract import STYLES_KEY, style_painting_key

    out = tmp_path / "two.fast.onnx"
    report = write_model(two_style_run / "last.pt", out, painting=two_paintings)
    assert {r["mix"] for r in report} >= {"1 of 2", "0.6,0.4 of 2"}  # parity per style, and mixed
    assert all(r["max_diff"] <= 1 for r in report)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "style_weights"]
    meta = session.get_modelmeta().custom_metadata_map
    listed = json.loads(meta[STYLES_KEY])
    assert [s["name"] for s in listed] == ["stripes", "noise"]
    assert listed[0]["loss_settings"]["content_weight"] == 2.0
    assert (
        meta[style_painting_key("stripes")] and meta[style_painting_key("noise")]
    )  # both thumbnails
    image = np.random.default_rng(1).integers(0, 256, (1, 40, 52, 3), dtype=np.uint8)
    first, second, half = (
        session.run(None, {"image": image, "style_weights": np.array(w, np.float32)})[0]
        for w in ([1, 0], [0, 1], [0.5, 0.5])
    )
    assert first.shape == image.shape and (first != second).any()
    assert (half != first).any() and (half != second).any()
    tiles = ort.InferenceSession(str(tiles_path(out)), providers=["CPUExecutionProvider"])
    assert "style_weights" in [i.name for i in tiles.get_inputs()]
    assert unpack.main([str(out), "--runs", str(tmp_path / "runs")]) == 0
    back = checkpoint.load(tmp_path / "runs" / "styles.fast" / "last.pt")
    assert [s["name"] for s in back["styles"]] == ["stripes", "noise"]
    assert back["styles"][1]["sha256"] == listed[1]["style_image_sha256"]
    # Re-exported where the paintings are not (training.join_styles --network MODEL.onnx), the
    # thumbnails come from the model itself, each under its own style's key.
    from export.painting import painting_props

    keys = [style_painting_key(n) for n in ("stripes", "noise")]
    assert painting_props(back, None) == {k: meta[k] for k in keys}


def test_rerun_resumes_and_another_style_list_is_refused(two_paintings, photo_dir, tmp_path):
    out = tmp_path / "run"
    both = [str(two_paintings / "stripes.png"), str(two_paintings / "noise.png")]
    train(config(both, photo_dir, out, steps=4))
    train(config(both, photo_dir, out, steps=7))
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 8))  # continued, not restarted, no step logged twice
    assert checkpoint.load(out / "last.pt")["step"] == 7
    with pytest.raises(UsageError, match="trained on the styles"):
        train(config(both[::-1], photo_dir, out, steps=9))


def test_sigterm_saves_and_prints_the_command_that_resumes(style_path, photo_dir, tmp_path):
    out = tmp_path / "run"
    argv = [
        "--style", str(style_path), "--data", str(photo_dir), "--out", str(out), "--steps",
        "100000", "--batch-size", "2", "--image-size", "64", "--style-size", "64",
        "--workers", "0", "--arch", "fast", "--base-channels", "4", "--residual-blocks", "1",
        "--save-every", "100000", "--sample-every", "100000",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.train", *argv],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (out / "log.jsonl").is_file() or not (out / "log.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    saved = checkpoint.load(out / "last.pt")["step"]
    assert saved >= 1
    assert "resume with:" in output and f"--out {out}" in output, output
    assert f"saved {out / 'last.pt'}" in output


def test_precision_auto_is_bf16_only_where_native():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(UsageError, match="--precision"):
        autocast_dtype("fp8", cpu)


def test_add_style_learns_only_its_norms_against_the_frozen_trunk(
    two_style_run, photo_dir, tmp_path
):
    import onnxruntime as ort

    from training import add_style
    from training.trunk import norm_parameters

    painting = tmp_path / "waves.png"
    yy, xx = np.mgrid[0:80, 0:80]
    waves = np.stack([128 + 120 * np.sin(xx / 2.0), 60 + 0 * yy, 128 + 120 * np.cos(yy / 3.0)], -1)
    Image.fromarray(waves.astype(np.uint8)).save(painting)
    out = tmp_path / "mine"
    argv = [
        "--painting", str(painting), "--name", "my_waves", "--data", str(photo_dir),
        "--out", str(out), "--steps", "5", "--trunk", str(two_style_run / "last.pt"),
        "--", "--image-size", "64", "--batch-size", "2", "--style-size", "64", "--workers", "0",
    ]  # fmt: skip
    assert add_style.main(argv) == 0
    trunk = checkpoint.load(two_style_run / "last.pt")["model"]
    learnt = checkpoint.load(out / "runs" / "my_waves" / "last.pt")
    norms = set(norm_parameters(TransformerNet(ModelConfig(**learnt["model_config"]))))
    assert learnt["model_config"]["num_styles"] == 1
    assert [s["name"] for s in learnt["styles"]] == ["my_waves"]
    for k, v in learnt["model"].items():
        if k in norms:
            assert v.shape[0] == 1 and not torch.equal(v[0], trunk[k].mean(0))  # it learnt
        else:
            assert torch.equal(v, trunk[k]), k  # frozen
    model = out / "my_waves.fast.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["name"] == "my_waves"
    assert [i.name for i in session.get_inputs()] == ["image"]  # served like any single style


def test_add_style_without_a_multi_style_model_says_what_to_pass(
    tmp_path, photo_dir, capsys, monkeypatch
):
    from training import add_style

    argv = ["--painting", str(tmp_path / "p.png"), "--data", str(photo_dir), "--out", str(tmp_path)]
    make_painting(32).save(tmp_path / "p.png")
    monkeypatch.setattr(add_style, "BUNDLED", tmp_path)  # a models folder without one
    assert add_style.main(argv) == 2
    assert "--trunk" in capsys.readouterr().err


def test_gallery_paints_each_style_of_a_multi_style_model(multi_model_dir, model_dir):
    from devtools.images import make_photo
    from export.gallery import load_styles, render

    styles = load_styles(multi_model_dir) | load_styles(model_dir)
    assert {"waves", "checks", "stripes", "dots"} <= set(styles)
    assert styles["waves"].meta["title"] == "Waves"  # its own entry, not the network's
    photo = make_photo(64, 48, seed=3)
    waves, checks = (np.asarray(render(styles, n, photo), np.float32) for n in ("waves", "checks"))
    assert waves.shape == (48, 64, 3) and np.abs(waves - checks).mean() > 1


def test_gallery_takes_the_models_painting_where_the_file_is_not_here(multi_model_dir, tmp_path):
    """A style added with training.add_style, or a machine without ../shared: the sheets show
    the thumbnail the model carries."""
    from PIL import Image

    from export.gallery import load_styles, painting

    styles = load_styles(multi_model_dir)
    waves, checks = (np.asarray(painting(styles[n], tmp_path, n), np.float32) for n in ("waves", "checks"))  # fmt: skip
    assert waves.shape[0] > 8 and checks.shape[0] > 8  # not the blank stand-in
    assert np.abs(waves.mean((0, 1)) - checks.mean((0, 1))).max() > 3  # each its own painting
    Image.new("RGB", (20, 10), "red").save(tmp_path / "waves.jpg")
    assert painting(styles["waves"], tmp_path, "waves").size == (20, 10)  # the file, where here


def test_a_style_of_the_trunk_relearns_from_its_own_norms_and_joins_back(
    two_style_run, two_paintings, photo_dir, tmp_path
):
    from training.join_styles import join
    from training.trunk import norm_parameters

    network = checkpoint.load(two_style_run / "last.pt")  # styles: stripes, noise
    trunk = str(two_style_run / "last.pt")
    # lr 0: the start itself, which for "noise" must be its own row, not the styles' mean
    still = train(config([str(two_paintings / "noise.png")], photo_dir, tmp_path / "n0", trunk=trunk, lr=0.0, steps=1))  # fmt: skip
    relearnt = train(config([str(two_paintings / "noise.png")], photo_dir, tmp_path / "n1", trunk=trunk, steps=3))  # fmt: skip
    new = tmp_path / "new.png"
    make_painting(48).save(new)
    added = train(config([str(new)], photo_dir, tmp_path / "new", trunk=trunk, steps=2))
    norms = norm_parameters(TransformerNet(ModelConfig(**network["model_config"])))
    for k in norms:
        assert torch.equal(checkpoint.load(still)["model"][k][0], network["model"][k][1])

    joined = join(network, [checkpoint.load(relearnt), checkpoint.load(added)])
    assert [s["name"] for s in joined["styles"]] == ["stripes", "noise", "new"]
    assert joined["model_config"]["num_styles"] == 3 and "optimizer" not in joined
    for k in norms:
        assert torch.equal(joined["model"][k][0], network["model"][k][0])  # untouched
        assert torch.equal(joined["model"][k][1], checkpoint.load(relearnt)["model"][k][0])
        assert torch.equal(joined["model"][k][2], checkpoint.load(added)["model"][k][0])
    net = TransformerNet(ModelConfig(**joined["model_config"]))
    net.load_state_dict(joined["model"])
    out = net(torch.rand(1, 3, 32, 32) * 255, one_hot(torch.tensor([2]), 3))
    assert torch.isfinite(out).all()

    elsewhere = train(config([str(new)], photo_dir, tmp_path / "free", steps=2))  # its own convs
    with pytest.raises(UsageError, match="--trunk"):
        join(network, [checkpoint.load(elsewhere)])
    deeper = train(config([str(new)], photo_dir, tmp_path / "deep", steps=1, residual_blocks=2))
    with pytest.raises(UsageError, match="its layers"):
        join(network, [checkpoint.load(deeper)])

    from training import join_styles

    out = tmp_path / "joined.pt"
    assert join_styles.main(["--network", trunk, "--styles", str(added), "--out", str(out)]) == 0
    assert [s["name"] for s in checkpoint.load(out)["styles"]] == ["stripes", "noise", "new"]
    assert (
        join_styles.main(["--network", trunk, "--styles", str(elsewhere), "--out", str(out)]) == 2
    )
