"""The feed-forward style networks: Johnson et al. 2016 ("Perceptual Losses for Real-Time Style
Transfer and Super-Resolution") with instance norm (Ulyanov et al. 2016), and `fast`, a lighter
variant for CPU serving.

Contract, shared by training, export and serving: float RGB in 0..255, NCHW, in and out, any
height and width; the output has exactly the input's size. Normalization and the padding to a
size the two stride-2 stages can undo live inside the module so the exported graph carries them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    arch: str = "johnson"  # johnson | fast
    base_channels: int = 32  # widths are base, 2*base, 4*base (32, 64, 128 in the paper)
    num_residual_blocks: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


# `fast` spends ~1/17 of johnson's multiply-adds at 512x512 (2.4 vs 40 GMAC): three cheap 3x3
# stride-2 stages replace the full-resolution 9x9 convolution, and the residual blocks run at
# 1/8 scale (1/4 in johnson), where a 3x3 conv still sees 24 px of the image.
PRESETS = {
    "johnson": ModelConfig("johnson", base_channels=32, num_residual_blocks=5),
    "fast": ModelConfig("fast", base_channels=16, num_residual_blocks=5),
}


class ConvLayer(nn.Sequential):
    """Reflection pad + conv, then optionally affine instance norm and ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        norm: bool = True,
        relu: bool = True,
    ):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride),
        ]
        if norm:
            layers.append(nn.InstanceNorm2d(c_out, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3, relu=False)  # as in Johnson's block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class UpsampleConv(nn.Module):
    """Nearest 2x upsample then conv: avoids the checkerboard of transposed convs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, norm: bool = True, relu: bool = True):
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel, norm=norm, relu=relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def pad_amount(size: int, multiple: int) -> int:
    """Pixels to add so `size` becomes a multiple of `multiple` and at least 2 * `multiple`.

    k stride-2 stages need a multiple of 2**k; the reflection pads need the smallest map to be
    >= 2 px for a 1-px reflection. Pure integer arithmetic, no comparisons, so the ONNX tracer
    records it as graph ops and the exported model stays dynamic in H and W:
    `(m // size + m - 1) // m` is 1 for sizes 1..m and 0 from m + 1 on.
    """
    m = multiple
    return (-size) % m + m * ((m // size + m - 1) // m)


# The stride-2 stages centre their windows on even pixels, so they meet the left and top edges
# on a window's centre and the right and bottom ones on its rim: trained networks painted a
# 10-px stripe down the right edge (the_scream) and dots along the bottom (starry_night).
# Mirroring EDGE px of image past those two edges puts the asymmetry outside the crop; 16 px
# removed both, 8 halved them. It costs 6 % more pixels at 512x512.
EDGE = 16


def mirror_right_and_bottom(x: torch.Tensor, edge: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H + e, W + e): the last `edge` columns and rows mirrored onto the
    right and bottom (fewer when the image is smaller). Slices, not F.pad's reflect mode, which
    fails for images under `edge` px, nor losses.frame, whose Python branch on the size the
    ONNX tracer would freeze at the export's sample size."""
    if edge < 1:  # x[..., -0:] is all of x, not none of it
        raise ValueError(f"edge must be at least 1 px, got {edge}")
    x = torch.cat([x, x[..., -edge:].flip(-1)], -1)
    return torch.cat([x, x[..., -edge:, :].flip(-2)], -2)


class TransformerNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c, arch = self.config.base_channels, self.config.arch
        if arch == "johnson":
            self.multiple = 4  # two stride-2 stages
            first = ConvLayer(3, c, 9)
        elif arch == "fast":
            self.multiple = 8  # three
            first = ConvLayer(3, c, 3, stride=2)
        else:
            raise ValueError(f"unknown arch {arch!r}; expected one of {list(PRESETS)}")
        self.encoder = nn.Sequential(
            first,
            ConvLayer(c, 2 * c, 3, stride=2),
            ConvLayer(2 * c, 4 * c, 3, stride=2),
        )
        self.residuals = nn.Sequential(
            *[ResidualBlock(4 * c) for _ in range(self.config.num_residual_blocks)]
        )
        self.decoder = nn.Sequential(
            UpsampleConv(4 * c, 2 * c, 3),
            UpsampleConv(2 * c, c, 3),
            ConvLayer(c, 3, 9, norm=False, relu=False)
            if arch == "johnson"
            else UpsampleConv(c, 3, 3, norm=False, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 3, H, W) float RGB in 0..255
        h, w = x.shape[-2], x.shape[-1]
        x = mirror_right_and_bottom(x, EDGE)
        # Edge (replicate) padding works for any size, unlike reflection.
        m = self.multiple
        x = F.pad(x, (0, pad_amount(x.shape[-1], m), 0, pad_amount(x.shape[-2], m)), "replicate")
        y = self.decoder(self.residuals(self.encoder(x / 127.5 - 1.0)))
        return ((y + 1.0) * 127.5)[..., :h, :w]  # (N, 3, H, W), unclamped 0..255 scale


def build_model(config: ModelConfig | dict) -> TransformerNet:
    if isinstance(config, dict):
        config = ModelConfig(**config)
    return TransformerNet(config)
