"""The exported modules: the trained network with the serving I/O contract around it.

UInt8Stylizer is the style model. TileStylizer is the same network for images too large for
one run (function/tiling.py): it also takes the instance-norm statistics to use and returns
the ones it computed, so statistics taken once from the whole image can be fed to every tile,
and no tile is normalised differently from its neighbours.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from training.model import StyleNorm, TakesStyle


class _Statistics:
    """What every SharedNorm of one forward pass reads and writes."""

    def __init__(self) -> None:
        self.given = torch.zeros(2, 0)  # (2, S): means, then variances, of every layer
        self.use_given = torch.zeros(())  # () float: 1 uses `given`, 0 computes its own
        self.computed: dict[int, torch.Tensor] = {}  # (N, 2, C) per layer, by its offset


class SharedNorm(TakesStyle):
    """A conditional instance norm whose mean and variance can come from outside.

    `use_given` mixes rather than branches (an ONNX If would split the graph): 0 is exactly
    instance norm, 1 is the given statistics."""

    def __init__(self, norm: StyleNorm, stats: _Statistics, offset: int):
        super().__init__()
        self.norm, self.eps = norm, norm.eps
        self.stats, self.offset, self.channels = stats, offset, norm.weight.shape[1]

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        mean = x.mean((2, 3), keepdim=True)  # (N, C, 1, 1)
        var = (x - mean).pow(2).mean((2, 3), keepdim=True)
        self.stats.computed[self.offset] = torch.cat([mean, var], 2).flatten(2).transpose(1, 2)
        use, given = self.stats.use_given, self.stats.given
        given = given[:, self.offset : self.offset + self.channels]  # (2, C)
        mean = use * given[0].view(1, -1, 1, 1) + (1 - use) * mean
        var = use * given[1].view(1, -1, 1, 1) + (1 - use) * var
        return self.norm.affine((x - mean) * torch.rsqrt(var + self.eps), style)


def share_norms(net: nn.Module, stats: _Statistics) -> int:
    """Replace every StyleNorm in `net` (in place) by a SharedNorm; returns S, the number
    of channels the statistics vector holds."""
    offset = 0
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, StyleNorm):
                setattr(module, child_name, SharedNorm(child, stats, offset))
                offset += child.weight.shape[1]
    return offset


class UInt8Stylizer(nn.Module):
    """uint8 (N, H, W, 3) RGB in, uint8 (N, H, W, 3) out, around a float NCHW 0..255 network."""

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.net = copy.deepcopy(net).to(dtype).eval()  # a copy: fp16 must not touch the caller's
        self.dtype = dtype

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.dtype)  # (N, 3, H, W)
        y = self.net(x, style).float().round().clamp(0, 255)
        return y.to(torch.uint8).permute(0, 2, 3, 1)  # (N, H, W, 3)


class TileStylizer(UInt8Stylizer):
    """The same contract plus the statistics: (2, S) and a () flag in, (N, 2, S) out.

    A separate graph from UInt8Stylizer's because spelling instance norm out as the ops above
    costs ~1.4x the time of ONNX's fused InstanceNormalization (measured at 512 and 1024 px),
    a price only the rare tiled request should pay."""

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__(net, dtype)
        self._stats = _Statistics()
        self.stats_size = share_norms(self.net, self._stats)

    def forward(  # type: ignore[override]
        self,
        image: torch.Tensor,
        norm_stats: torch.Tensor,
        use_norm_stats: torch.Tensor,
        style: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = self._stats
        s.computed = {}
        s.given, s.use_given = norm_stats.to(self.dtype), use_norm_stats.to(self.dtype)
        stylized = super().forward(image, style)  # (N, H, W, 3)
        computed = torch.cat([s.computed[k] for k in sorted(s.computed)], 2)  # (N, 2, S)
        return stylized, computed.float()
