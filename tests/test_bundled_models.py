"""The styles shipped in function/models: complete metadata, and each one really stylizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylefn.styles.registry import StyleRegistry
from tests.conftest import make_photo

MODELS = Path(__file__).resolve().parents[1] / "function" / "models"
EVAL_PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "kodim23.png"
REQUIRED = ("name", "title", "artist", "loss_net", "training_steps", "image_size", "precision")
# Per painting: in the file's metadata for a one-style model, in each `styles` entry of a
# multi-style one
PER_STYLE = ("name", "title", "artist", "style_image_sha256", "loss_settings")
# Above what re-encoding or a near-identity network would give (~1-3 grey levels) and well
# below what a style network does (tens of levels): a network that learned a style clears it.
MIN_MEAN_ABS_DIFF = 15.0


@pytest.fixture(scope="module")
def registry() -> StyleRegistry:
    return StyleRegistry(MODELS)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = Image.open(EVAL_PHOTO).convert("RGB") if EVAL_PHOTO.is_file() else make_photo(384, 256)
    img = img.resize((193, 129))  # odd size on purpose
    return np.asarray(img)


def test_models_are_bundled_and_small():
    paths = sorted(MODELS.glob("*.onnx"))
    assert paths, "function/models must hold at least one trained style"
    assert sum(p.stat().st_size for p in paths) <= 40 * 2**20


def test_every_model_has_complete_metadata(registry):
    for key, model in registry.models.items():  # every style in every arch it comes in
        missing = [k for k in REQUIRED if not model.metadata.get(k)]
        assert not missing, f"{key} lacks {missing}"
        for style in model.style_names:
            info = model.style_info(style)
            missing = [k for k in PER_STYLE if not info.get(k)]
            assert not missing, f"{key}'s {style} lacks {missing}"
            assert model.painting(style) is not None, f"{key}'s {style} has no painting thumbnail"
        assert model.metadata["name"] == model.name
        assert model.metadata.get("arch", "johnson") == model.arch
        assert int(model.metadata["training_steps"]) > 0  # never an untrained network
        assert model.metadata["loss_net"] in ("imagenet-efficientnet-lite0", "imagenet-vgg16")


def test_every_style_stylizes(registry, photo):
    for name in registry.styles:  # each style of a multi-style model too
        choice = registry.get(name)
        key = choice.key
        out = registry.stylize(choice, photo)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert out.std() > 5, f"{key} gives a near-constant image"
        diff = np.abs(out.astype(float) - photo.astype(float)).mean()
        assert diff > MIN_MEAN_ABS_DIFF, f"{key} barely changes the photo ({diff:.1f})"


def test_the_catalog_records_the_bundled_network_s_settings(registry, tmp_path):
    """training/paintings.py is what retraining the bundled network starts from: each of its
    paintings resolves to the loss settings the shipped file says that style was trained with."""
    from export.onnx_export import STYLE_LOSS_SETTINGS
    from training import styles
    from training.loss_nets import DEFAULTS
    from training.paintings import CATALOG

    (bundled,) = (m for m in registry.models.values() if len(m.style_names) > 1)
    shipped = {name: bundled.style_info(name)["loss_settings"] for name in bundled.style_names}
    assert set(shipped) == {p.name for p in CATALOG}
    for p in CATALOG:
        Image.new("RGB", (8, 8)).save(tmp_path / f"{p.name}.jpg")
    none = dict(style_size=None, style_layers=None, style_weight=None, content_weight=None)
    for entry in styles.resolve([str(tmp_path)], DEFAULTS["efficientnet-lite0"], **none):
        recorded = shipped[entry.name]
        resolved = {k: getattr(entry, k) for k in STYLE_LOSS_SETTINGS}
        resolved["trim"] = list(entry.trim) if entry.trim else None
        assert {k: recorded.get(k) for k in STYLE_LOSS_SETTINGS} == resolved, entry.name
