"""Temporal stability without video: the output of a slightly moved, slightly noisier photo
should be the output of the photo, moved the same way (Wang et al. 2020, "Consistent Video Style
Transfer via Relaxation and Regularization", ReReVST).

A feed-forward network paints its strokes on the grid of its stride-2 stages, so a photo moved
by a few pixels is painted with different strokes: a panning video flickers (14-19 grey levels
of warped temporal error against ~2 for the input, benchmarks/video.py). This term warps each
training photo by a random smooth motion (a sub-pixel translation, a slight zoom and rotation,
and a smooth local field), adds sensor-like noise, and penalises the difference between the
painting of the moved photo and the moved painting. No optical flow is needed at inference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_SHIFT = 8.0  # px: a full period of the fast arch's stride-8 grid
MAX_ZOOM = 0.03
MAX_TURN = math.radians(2.0)
LOCAL = 2.0  # px: amplitude of the smooth local field
NOISE = 2.0  # grey levels, as a phone camera's sensor noise


def random_motion(
    n: int, height: int, width: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(N, H, W, 2) sampling grids for F.grid_sample, in its [-1, 1] coordinates: each a
    random translation up to MAX_SHIFT px, zoom, turn and a smooth local field."""

    def uniform(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * 2 - 1) * scale

    shift = uniform(n, 2, scale=MAX_SHIFT) * torch.tensor([2 / width, 2 / height])  # (N, 2)
    zoom = 1 + uniform(n, scale=MAX_ZOOM)
    turn = uniform(n, scale=MAX_TURN)
    cos, sin = torch.cos(turn) * zoom, torch.sin(turn) * zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, 3, height, width], align_corners=False)  # (N, H, W, 2)
    local = uniform(n, 2, 4, 4, scale=LOCAL)  # (N, 2, 4, 4) px, smooth once upsampled
    local = F.interpolate(local, (height, width), mode="bicubic", align_corners=False)
    local = local * torch.tensor([2 / width, 2 / height]).view(1, 2, 1, 1)
    return (grid + local.permute(0, 2, 3, 1)).to(device)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) sampled at `grid` (N, H, W, 2); edges repeat where it falls outside."""
    return F.grid_sample(x, grid.to(x.dtype), padding_mode="border", align_corners=False)


def stability_loss(
    net: torch.nn.Module,
    x: torch.Tensor,  # (N, 3, H, W) 0..255, the batch
    y: torch.Tensor,  # (N, 3, H, W) its painting
    mix: torch.Tensor,  # (N, S) style weights
    generator: torch.Generator,
) -> torch.Tensor:
    """Mean squared difference, in (0..1)^2 units, between the painting of the moved, noisier
    photo and the moved painting, away from the borders the motion brings in."""
    n, _, h, w = x.shape
    grid = random_motion(n, h, w, generator, x.device)
    noise = torch.randn(x.shape, generator=generator).to(x.device) * NOISE
    moved = (warp(x, grid) + noise).clamp(0, 255)
    target = warp(y.detach().float(), grid)  # the painting is the anchor, not pulled toward it
    keep = slice(int(MAX_SHIFT) + 4, -int(MAX_SHIFT) - 4)
    diff = net(moved, mix).float() - target  # (N, 3, H, W)
    return diff[..., keep, keep].pow(2).mean() / 255.0**2
