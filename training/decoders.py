"""Decoders that turn the frozen EfficientNet-Lite0's features back into a picture: the learnt
half of universal style transfer (issue #31, docs/arbitrary_style.md). At request time the
photo's features at a level are moved to a painting's statistics (WCT) and decoded; the decoder
itself never sees a painting, only photos it must reproduce.

One decoder per tap: nearest-neighbour upsampling then a 3x3 convolution per stride-2 step
(no transposed convolutions: their uneven overlap paints a checkerboard), reflection padding,
instance-norm-free (the transform sets the statistics; a norm would undo them).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Tap -> (its channels, its stride) in training/efficientnet.py.
TAPS = {"s2": (96, 2), "s4": (144, 4), "s8": (240, 8), "s16": (672, 16)}


@dataclass(frozen=True)
class DecoderConfig:
    level: str = "s16"
    width: int = 16  # channels at full resolution, doubled per stride-2 step up to max_width
    max_width: int = 128  # 256 made a step 5.4 s on 2 CPU cores (256 px, batch 4, width 32)


class Conv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, relu: bool = True):
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3))
        if relu:
            self.append(nn.ReLU(inplace=True))


class Decoder(nn.Module):
    """Features of tap `level` (N, C, H/s, W/s) -> RGB float 0..255 (N, 3, H, W)."""

    def __init__(self, cfg: DecoderConfig = DecoderConfig()):
        super().__init__()
        if cfg.level not in TAPS:
            raise ValueError(f"no decoder for {cfg.level!r}; taps: {', '.join(TAPS)}")
        self.cfg = cfg
        channels, stride = TAPS[cfg.level]
        steps = stride.bit_length() - 1  # stride-2 steps back to full size
        widths = [
            min(cfg.max_width, cfg.width * 2**i) for i in range(steps, -1, -1)
        ]  # coarse to fine
        self.entry = nn.Sequential(nn.Conv2d(channels, widths[0], 1), nn.ReLU(inplace=True))
        self.ups = nn.ModuleList(
            nn.Sequential(Conv(c_in, c_out), Conv(c_out, c_out))
            for c_in, c_out in itertools.pairwise(widths)
        )
        self.exit = Conv(widths[-1], 3, relu=False)

    def forward(self, f: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """`size` (H, W) when the photo's sides are not multiples of the stride (the encoder
        rounded them); None gives (H/s * s, W/s * s), as the exported graph does."""
        x = self.entry(f)  # (N, W0, H/s, W/s)
        for up in self.ups:
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="nearest")
        return self.exit(x) * 64.0 + 127.5  # about 0..255 from the start, unclamped for the loss
