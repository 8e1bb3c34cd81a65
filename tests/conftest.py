"""Shared fixtures: small generated photos and paintings, never files from ../shared."""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a loaded 2-core machine (CI beside other
# work) spinning threads of several torch processes starved each other, and 6 tiny training
# steps took 131 s instead of 14. Set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from devtools.images import make_photo
from devtools.server import function_server

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_DIR = ROOT / "function"


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def decoded(data: bytes) -> Image.Image:
    """Fully decoded, so a truncated answer fails here rather than later."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def make_painting(size: int = 96) -> Image.Image:
    """A high-contrast, stroke-like pattern so the style loss has something to learn."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = 127 + 127 * np.sin(xx / 3 + np.sin(yy / 7) * 3)
    g = 127 + 127 * np.sin(yy / 4)
    b = 200 - 100 * np.cos((xx + yy) / 5)
    return Image.fromarray(np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i in range(6):
        make_photo(80 + 7 * i, 72 + 5 * i, seed=i).save(d / f"photo_{i}.jpg", quality=92)
    return d


@pytest.fixture(scope="session")
def style_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("styles") / "stripes.png"
    make_painting().save(p)
    return p


def _train_tiny(style: Path, photos: Path, out: Path, **arch) -> Path:
    """8 CPU steps; `arch` may pick another network, e.g. arch="fast", base_channels=4."""
    from training.train import TrainConfig, train

    cfg = TrainConfig(
        style=[str(style)], data=str(photos), out=str(out), steps=8, batch_size=2, image_size=64,
        style_size=96, workers=0, checkpoint_every=1000, sample_every=1000,
        **arch,
    )  # fmt: skip
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_checkpoint(photo_dir, style_path, tmp_path_factory) -> Path:
    """A real checkpoint from 8 CPU training steps (EfficientNet-Lite0 loss, 64 px)."""
    return _train_tiny(style_path, photo_dir, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def model_dir(tiny_checkpoint, photo_dir, style_path, tmp_path_factory) -> Path:
    """A function/models-like folder, exported (with parity) by our own code: styles "dots"
    (johnson) and "stripes" (johnson, and a tiny fast-arch model, `stripes.fast.onnx`)."""
    from export.onnx_export import write_model

    d = tmp_path_factory.mktemp("models")
    write_model(tiny_checkpoint, d / "stripes.onnx", title="Stripes", artist="Test Painter")
    fast = _train_tiny(
        style_path, photo_dir, tmp_path_factory.mktemp("tiny_fast_run"),
        arch="fast", base_channels=4, residual_blocks=1,
    )  # fmt: skip
    write_model(fast, d / "stripes.fast.onnx", title="Stripes", artist="Test Painter")
    second = tmp_path_factory.mktemp("style2") / "dots.png"
    make_photo(96, 96, seed=99).save(second)
    ckpt = _train_tiny(second, photo_dir, tmp_path_factory.mktemp("tiny_run2"))
    write_model(ckpt, d / "dots.onnx", title="Dots", artist="Test Painter")
    return d


@pytest.fixture(scope="session")
def multi_model_dir(photo_dir, tmp_path_factory) -> Path:
    """A folder with one multi-style model, `duo.fast.onnx`: styles "waves" and "checks" in one
    tiny fast network (conditional instance norm), exported with parity by our own code."""
    from export.onnx_export import write_model
    from training.train import TrainConfig, train

    paintings = tmp_path_factory.mktemp("duo_paintings")
    make_painting().save(paintings / "waves.png")
    checks = (np.indices((96, 96)).sum(0) // 12 % 2 * 200 + 30).astype(np.uint8)
    Image.fromarray(np.stack([checks, 255 - checks, checks // 2], -1)).save(
        paintings / "checks.png"
    )
    cfg = TrainConfig(
        style=[str(paintings / "waves.png"), str(paintings / "checks.png")], data=str(photo_dir),
        out=str(tmp_path_factory.mktemp("duo_run")), steps=10, batch_size=2, image_size=64,
        style_size=96, workers=0, checkpoint_every=1000, sample_every=1000, arch="fast",
        base_channels=4, residual_blocks=1, lr=1e-2,
    )  # fmt: skip
    d = tmp_path_factory.mktemp("multi_models")
    write_model(train(cfg), d / "duo.fast.onnx", name="duo", painting=paintings)
    return d


# --- real servers on 127.0.0.1 ----------------------------------------------------------------


@pytest.fixture(scope="session")
def serve_function():
    """`function_server` for tests that run a stand-in function of their own."""
    return function_server


@pytest.fixture(scope="session")
def live_server(model_dir, tmp_path_factory) -> Iterator[str]:
    """The real function (function/main.py) on the tiny styles of `model_dir`; yields its URL."""
    log = tmp_path_factory.mktemp("live_server") / "server.log"
    with function_server(FUNCTION_DIR / "main.py", log, {"MODEL_DIR": str(model_dir)}) as url:
        yield url


@pytest.fixture(scope="session")
def live_mix_server(multi_model_dir, model_dir, tmp_path_factory) -> Iterator[str]:
    """The real function on a multi-style model ("waves", "checks") beside the single-style
    ones of `model_dir`; yields its URL."""
    log = tmp_path_factory.mktemp("live_mix_server") / "server.log"
    env = {"MODEL_DIR": f"{multi_model_dir}:{model_dir}"}
    with function_server(FUNCTION_DIR / "main.py", log, env) as url:
        yield url


@pytest.fixture(scope="session")
def make_client(model_dir):
    """A test client for an app created with the given extra env vars (read at import)."""
    import functions_framework

    def make(**env: str):
        saved = dict(os.environ)
        os.environ.update({"MODEL_DIR": str(model_dir), **env})
        try:
            app = functions_framework.create_app("stylize", str(FUNCTION_DIR / "main.py"))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        client = app.test_client()
        client.module = sys.modules["main"]  # each app executes main.py into a module of its own
        return client

    return make
