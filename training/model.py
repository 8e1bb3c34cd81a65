"""The feed-forward style networks: Johnson et al. 2016 ("Perceptual Losses for Real-Time Style
Transfer and Super-Resolution") with instance norm (Ulyanov et al. 2016), and `fast`, a lighter
variant for CPU serving.

One network can paint several styles: every instance norm is conditional (Dumoulin, Shlens and
Kudlur 2017, "A Learned Representation for Artistic Style"), with a scale and shift per style
and convolutions shared by all of them. The style is a mix, a weight per style: one-hot paints
one painting, anything else blends their norm parameters. `num_styles=1` is the single-style
network, whose mix is always [1].

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
    num_styles: int = 1  # conditional instance norm: a scale and shift per style

    def to_dict(self) -> dict:
        return asdict(self)


# `fast` spends ~1/17 of johnson's multiply-adds at 512x512 (2.4 vs 40 GMAC): three cheap 3x3
# stride-2 stages replace the full-resolution 9x9 convolution, and the residual blocks run at
# 1/8 scale (1/4 in johnson), where a 3x3 conv still sees 24 px of the image.
PRESETS = {
    "johnson": ModelConfig("johnson", base_channels=32, num_residual_blocks=5),
    "fast": ModelConfig("fast", base_channels=16, num_residual_blocks=5),
}


class TakesStyle(nn.Module):
    """A module whose forward is (x, style): the mix, (S,) for the whole batch or (N, S)."""


class StyleNorm(TakesStyle):
    """Conditional instance norm: instance-normalise, then the mix's scale and shift.

    `weight` and `bias` are (S, C), a row per style; a mix blends the rows (style @ weight), so
    a one-hot mix is exactly that style's affine instance norm."""

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))
        self.eps = eps

    def affine(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The mix's scale and shift of normalised (N, C, H, W) features."""
        c = self.weight.shape[1]
        scale = (style @ self.weight).reshape(-1, c, 1, 1)  # (1 or N, C, 1, 1)
        shift = (style @ self.bias).reshape(-1, c, 1, 1)
        return x * scale + shift

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.affine(F.instance_norm(x, eps=self.eps), style)


class Styled(nn.Sequential, TakesStyle):
    """nn.Sequential that hands the style mix to the children that take one."""

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for module in self:
            x = module(x, style) if isinstance(module, TakesStyle) else module(x)
        return x


class ConvLayer(Styled):
    """Reflection pad + conv, then optionally conditional instance norm and ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        norm: bool = True,
        relu: bool = True,
        num_styles: int = 1,
    ):
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride),
        ]
        if norm:
            layers.append(StyleNorm(c_out, num_styles))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(TakesStyle):
    def __init__(self, channels: int, num_styles: int = 1):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, num_styles=num_styles)
        # no ReLU after the second conv, as in Johnson's block
        self.conv2 = ConvLayer(channels, channels, 3, relu=False, num_styles=num_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, style), style)


class UpsampleConv(TakesStyle):
    """Nearest 2x upsample then conv: avoids the checkerboard of transposed convs."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        norm: bool = True,
        relu: bool = True,
        num_styles: int = 1,
    ):
        super().__init__()
        self.conv = ConvLayer(c_in, c_out, kernel, norm=norm, relu=relu, num_styles=num_styles)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"), style)


def pad_amount(size: int, multiple: int) -> int:
    """Pixels to add so `size` becomes a multiple of `multiple` and at least 2 * `multiple`.

    k stride-2 stages need a multiple of 2**k; the reflection pads need the smallest map to be
    >= 2 px for a 1-px reflection. Pure integer arithmetic, no comparisons, so the ONNX tracer
    records it as graph ops and the exported model stays dynamic in H and W:
    `(m // size + m - 1) // m` is 1 for sizes 1..m and 0 from m + 1 on.
    """
    m = multiple
    return (-size) % m + m * ((m // size + m - 1) // m)


# A network paints its own edges differently from its inside: the stride-2 stages centre their
# windows on even pixels (meeting the left and top edges on a window's centre, the right and
# bottom ones on its rim) and every conv reflects at the border. Trained networks painted a
# 10-px stripe down the right edge (the_scream), dots along the bottom (starry_night), a
# scalloped strip along the top and left (the_scream) and stars lined up along the top
# (starry_night). Mirroring EDGE px of image past every edge puts all of that outside the crop:
# 16 px removed the right and bottom ones; the top and left needed 24. A multiple of 8 (the
# `fast` stride), so the image keeps its phase and tiles and video frames still line up. It
# costs 20 % more pixels at 512x512 (560x560).
EDGE = 24


def mirror_edges(x: torch.Tensor, edge: int) -> tuple[torch.Tensor, int, int]:
    """(N, C, H, W) -> (N, C, H + 2e, W + 2e), the outer `edge` rows and columns of every side
    mirrored past it (fewer when the image is smaller), and the top and left offsets of the
    image in the result. Slices, not F.pad's reflect mode, which fails for images under `edge`
    px, nor losses.frame, whose Python branch on the size the ONNX tracer would freeze at the
    export's sample size."""
    if edge < 1:  # x[..., -0:] is all of x, not none of it
        raise ValueError(f"edge must be at least 1 px, got {edge}")
    left = x[..., :edge].flip(-1)
    x = torch.cat([left, x, x[..., -edge:].flip(-1)], -1)
    top = x[..., :edge, :].flip(-2)
    x = torch.cat([top, x, x[..., -edge:, :].flip(-2)], -2)
    return x, top.shape[-2], left.shape[-1]


class TransformerNet(nn.Module):
    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig()
        c, arch, s = self.config.base_channels, self.config.arch, self.config.num_styles
        if s < 1:
            raise ValueError(f"num_styles must be at least 1, got {s}")
        if arch == "johnson":
            self.multiple = 4  # two stride-2 stages
            first = ConvLayer(3, c, 9, num_styles=s)
        elif arch == "fast":
            self.multiple = 8  # three
            first = ConvLayer(3, c, 3, stride=2, num_styles=s)
        else:
            raise ValueError(f"unknown arch {arch!r}; expected one of {list(PRESETS)}")
        self.encoder = Styled(
            first,
            ConvLayer(c, 2 * c, 3, stride=2, num_styles=s),
            ConvLayer(2 * c, 4 * c, 3, stride=2, num_styles=s),
        )
        self.residuals = Styled(
            *[ResidualBlock(4 * c, s) for _ in range(self.config.num_residual_blocks)]
        )
        self.decoder = Styled(
            UpsampleConv(4 * c, 2 * c, 3, num_styles=s),
            UpsampleConv(2 * c, c, 3, num_styles=s),
            ConvLayer(c, 3, 9, norm=False, relu=False)
            if arch == "johnson"
            else UpsampleConv(c, 3, 3, norm=False, relu=False),
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, 3, H, W) float RGB in 0..255; style: the mix, (S,) or (N, S), one weight a
        # style; None only for a single-style network.
        if style is None:
            if self.config.num_styles != 1:
                raise ValueError(f"a {self.config.num_styles}-style network needs a style mix")
            style = x.new_ones(1)
        h, w = x.shape[-2], x.shape[-1]
        x, top, left = mirror_edges(x, EDGE)
        # Edge (replicate) padding works for any size, unlike reflection.
        m = self.multiple
        x = F.pad(x, (0, pad_amount(x.shape[-1], m), 0, pad_amount(x.shape[-2], m)), "replicate")
        style = style.to(x.dtype)
        y = self.decoder(self.residuals(self.encoder(x / 127.5 - 1.0, style), style), style)
        y = (y + 1.0) * 127.5  # unclamped 0..255 scale
        return y[..., top : top + h, left : left + w]  # (N, 3, H, W)


def one_hot(index: torch.Tensor, num_styles: int) -> torch.Tensor:
    """(N,) style indices -> (N, S) mixes that each paint one style."""
    return F.one_hot(index, num_styles).float()


def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict from before conditional norm (a norm's weight and bias (C,)) as a
    single-style network's ((1, C)); the convolutions' keys never changed."""
    convs = {k.removesuffix(".weight") for k, v in state.items() if v.dim() == 4}
    return {
        k: v[None] if v.dim() == 1 and k.rsplit(".", 1)[0] not in convs else v
        for k, v in state.items()
    }


def build_model(config: ModelConfig | dict) -> TransformerNet:
    if isinstance(config, dict):
        config = ModelConfig(**config)
    return TransformerNet(config)
