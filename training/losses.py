"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016) on loss-network features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by C*H*W so layers of any size compare."""
    n, c, h, w = features.shape
    # float32 even under autocast (which would run the matmul in bf16): Grams lose too much.
    with torch.autocast(features.device.type, enabled=False):
        f = features.reshape(n, c, h * w).float()
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


class PerceptualLoss(torch.nn.Module):
    """Content + style (+ TV) loss of stylized images `y` against their photos `x`.

    Weighted terms are returned separately so they can be logged; `total` is their sum. With a
    loss network that asks for it (`normalize_by_target`), each term is divided by its target's
    energy, which makes the weights scale-free.
    """

    def __init__(
        self,
        loss_net: torch.nn.Module,
        style_image: torch.Tensor,  # (1, 3, H, W) float 0..255
        *,
        content_layer: str,
        style_layers: dict[str, float],
        content_weight: float,
        style_weight: float,
        tv_weight: float = 0.0,
        jitter: int = 0,
    ):
        super().__init__()
        self.loss_net = loss_net
        self.content_layer = content_layer
        self.content_weight, self.style_weight, self.tv_weight = (
            content_weight,
            style_weight,
            tv_weight,
        )
        self.normalize = getattr(loss_net, "normalize_by_target", False)
        self.jitter = jitter
        with torch.no_grad():
            grams = {
                k: gram_matrix(v) for k, v in loss_net(style_image).items() if k in style_layers
            }
        self.style_layers = {
            k: w / (grams[k].pow(2).mean().item() if self.normalize else 1.0)
            for k, w in style_layers.items()
        }
        self.target_grams = grams

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and self.jitter:
            # Strided loss networks see each pixel at a fixed phase, so a generator can hide a
            # 2-px lattice in their blind spots; cropping both images by a random offset on
            # every step moves the phase and the lattice stops paying.
            dy, dx = (int(v) for v in torch.randint(0, self.jitter + 1, (2,)))
            y, x = y[..., dy:, dx:], x[..., dy:, dx:]
        features_y = self.loss_net(y)
        with torch.no_grad():
            target = self.loss_net(x)[self.content_layer]
        c = content_loss(features_y[self.content_layer], target)
        if self.normalize:
            c = c / target.float().pow(2).mean()
        terms = {
            "content_loss": self.content_weight * c,
            "style_loss": self.style_weight
            * style_loss(features_y, self.target_grams, self.style_layers),
            "tv_loss": self.tv_weight * total_variation_loss(y.float()),
        }
        terms["total_loss"] = torch.stack(list(terms.values())).sum()
        return terms
