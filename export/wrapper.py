"""The exported module: the trained network with the serving I/O contract around it."""

from __future__ import annotations

import copy

import torch
from torch import nn


class UInt8Stylizer(nn.Module):
    """uint8 (N, H, W, 3) RGB in, uint8 (N, H, W, 3) out, around a float NCHW 0..255 network."""

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.net = copy.deepcopy(net).to(dtype).eval()  # a copy: fp16 must not touch the caller's
        self.dtype = dtype

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.dtype)  # (N, 3, H, W)
        y = self.net(x).float().round().clamp(0, 255)
        return y.to(torch.uint8).permute(0, 2, 3, 1)  # (N, H, W, 3)
