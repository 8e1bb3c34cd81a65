"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016) on loss-network features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by C*H*W so layers of any size compare."""
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w).float()  # float32 even under autocast: Grams overflow bf16
    return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def style_loss(
    features: dict[str, torch.Tensor],
    target_grams: dict[str, torch.Tensor],
    layer_weights: dict[str, float],
) -> torch.Tensor:
    """Weighted sum over layers of the MSE between Gram matrices; targets are (1, C, C)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, weight in layer_weights.items():
        g = gram_matrix(features[name])
        total = total + weight * F.mse_loss(g, target_grams[name].expand_as(g))
    return total


def total_variation_loss(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, (N, C, H, W) in 0..255 scale / 255."""
    x = images / 255.0
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
