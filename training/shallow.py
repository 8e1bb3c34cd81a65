"""A shallow random multi-scale loss network, for training without ImageNet weights.

Ustyuzhaninov et al. 2016, "Texture synthesis using shallow convolutional networks with random
filters": one layer of zero-mean, unit-norm random filters already captures texture through
its Gram matrices, and several filter sizes on an image pyramid reach strokes of 3 to ~60 px.
A seeded random VGG16, by contrast, transfers little beyond palette and fine grain. Content is
kept by a random VGG16's relu3_3, which still preserves layout and edges.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (pyramid level, kernel size): level 0 is the full image, 1 half, 2 quarter
BANK = ((0, 3), (0, 5), (0, 7), (0, 11), (1, 11), (1, 15), (2, 15))
FILTERS = 128


class RandomMultiscaleNet(nn.Module):
    """Input float RGB 0..255 (N, 3, H, W); returns style maps `s{level}_{k}` and `relu3_3`."""

    # Each layer's loss is divided by its target's energy, so layers of very different
    # magnitude weigh alike and the content/style balance is scale-free.
    normalize_by_target = True

    def __init__(self, content_net: nn.Module, seed: int = 0):
        super().__init__()
        self.name = "random-multiscale"
        gen = torch.Generator().manual_seed(seed)
        self.banks = nn.ParameterList()
        for _, k in BANK:
            w = torch.randn(FILTERS, 3, k, k, generator=gen)
            w -= w.mean(dim=(1, 2, 3), keepdim=True)
            w /= w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            self.banks.append(nn.Parameter(w, requires_grad=False))
        self.content_net = content_net  # random VGG16, up to relu3_3 is used
        self.layer_names = (*[f"s{level}_{k}" for level, k in BANK], "relu3_3")
        self.style_layer_names = self.layer_names[:-1]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = (x - self.content_net.mean) / self.content_net.std
        pyramid = [y, F.avg_pool2d(y, 2), F.avg_pool2d(y, 4)]
        out = {}
        for (level, k), w in zip(BANK, self.banks, strict=True):
            out[f"s{level}_{k}"] = F.relu(F.conv2d(pyramid[level], w))  # (N, 128, H', W')
        out["relu3_3"] = self.content_net(x, stop_after="relu3_3")["relu3_3"]
        return out
