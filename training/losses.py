"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016) on loss-network features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, C), normalised by C*H*W so layers of any size compare."""
    n, c, h, w = features.shape
    # float32 even under autocast (which would run the matmul in bf16): Grams lose too much.
    with torch.autocast(features.device.type, enabled=False):
        f = features.reshape(n, c, h * w).float()
        return f @ f.transpose(1, 2) / (c * h * w)


STYLE_STATISTICS = ("gram", "cov")


def style_statistics(features: torch.Tensor, statistic: str) -> tuple[torch.Tensor, ...]:
    """What the style loss matches at one tap, (N, C, H, W) -> tensors of (N, C, C) / (N, C).

    `gram`: the raw Gram matrix (Gatys). `cov`: the channel covariance and the channel mean,
    matched separately. Why `cov`: post-ReLU activations have large means, so a raw Gram is
    mostly the mean's outer product; measured on EfficientNet-Lite0, a hazy, low-contrast
    stylization matched Starry Night's raw Grams at s2/s4 three times better than the photo
    did (relative error 0.045 vs 0.144) while its covariance was further off than the photo's
    (0.46 vs 0.33). Matching the covariance asks for the painting's contrast and texture.
    """
    if statistic == "gram":
        return (gram_matrix(features),)
    mean = features.float().mean((2, 3))  # (N, C)
    return gram_matrix(features - mean[..., None, None].to(features.dtype)), mean


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def style_loss(
    features: dict[str, torch.Tensor],
    targets: dict[str, tuple[torch.Tensor, ...]],
    weights: dict[str, tuple[float, ...]],
    statistic: str = "gram",
) -> torch.Tensor:
    """Weighted sum over layers and statistics of the MSE to the style image's (batch of 1)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, layer_weights in weights.items():
        for s, t, w in zip(
            style_statistics(features[name], statistic), targets[name], layer_weights, strict=True
        ):
            total = total + w * F.mse_loss(s, t.expand_as(s))
    return total


def total_variation_loss(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, (N, C, H, W) in 0..255 scale / 255."""
    x = images / 255.0
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


def frame(images: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """Reflection-pad (N, C, H, W) by (left, right, top, bottom); edge-pad images too small
    to reflect that far."""
    mode = "reflect" if max(pad) < min(images.shape[-2:]) else "replicate"
    return F.pad(images, pad, mode=mode)


@dataclass(frozen=True)
class StyleSpec:
    """One painting's part of the loss: the image, its taps' weights, and how much of the
    photo to keep when painting it."""

    image: torch.Tensor  # (1, 3, H, W) float 0..255
    layers: dict[str, float]
    style_weight: float
    content_weight: float


class MultiStyleLoss(torch.nn.Module):
    """Content + style (+ TV) loss of stylized images `y` against their photos `x`, each image
    painted in the style its `style_index` names.

    The loss network runs once per batch; each style's terms are taken over its own images and
    weighted by their share of the batch, so a batch's loss is the mean of its images' losses.
    Weighted terms are returned separately so they can be logged; `total` is their sum. With a
    loss network that asks for it (`normalize_by_target`), each term is divided by its target's
    energy, which makes the weights scale-free.
    """

    def __init__(
        self,
        loss_net: torch.nn.Module,
        styles: Sequence[StyleSpec],
        *,
        content_layer: str,
        tv_weight: float = 0.0,
        jitter: int = 0,
        margin: int = 8,
        style_statistic: str = "gram",
    ):
        super().__init__()
        self.loss_net = loss_net
        self.content_layer = content_layer
        self.tv_weight = tv_weight
        self.normalize = getattr(loss_net, "normalize_by_target", False)
        self.jitter, self.margin = jitter, margin
        if style_statistic not in STYLE_STATISTICS:
            raise ValueError(f"style statistic {style_statistic!r} not in {STYLE_STATISTICS}")
        self.style_statistic = style_statistic
        self.styles = tuple(styles)
        # Computed once: the paintings never change.
        self.targets = [self._targets(spec) for spec in self.styles]
        self.style_weights = [
            {
                k: tuple(
                    w / (t.pow(2).mean().item() if self.normalize else 1.0) for t in targets[k]
                )
                for k, w in spec.layers.items()
            }
            for spec, targets in zip(self.styles, self.targets, strict=True)
        ]

    @torch.no_grad()
    def _targets(self, spec: StyleSpec) -> dict[str, tuple[torch.Tensor, ...]]:
        # Framed like the images it is compared with, so the painting matches itself.
        m = self.margin
        features = self.loss_net(frame(spec.image, (m, m, m, m)))
        return {
            k: tuple(t.float() for t in style_statistics(v, self.style_statistic))
            for k, v in features.items()
            if k in spec.layers
        }

    def frame_padding(self) -> tuple[int, int, int, int]:
        """Reflection padding (left, right, top, bottom) put around both images before the loss
        network.

        The margin keeps the image's own border away from the loss network's zero padding and
        puts every border pixel in as many 3x3 neighbourhoods (`s1`) as an inner one; without
        it the generator learnt to paint a 1-3 px band along the edges. In training the split
        between the sides is random: strided loss networks see each pixel at a fixed phase, so
        a generator can hide a lattice in their blind spots, and moving the phase on every step
        stops that paying. (A random crop moved the phase too, but left the top and left
        border unsupervised on most steps.)
        """
        m, j = self.margin, self.jitter if self.training else 0
        dy, dx = (int(v) for v in torch.randint(0, j + 1, (2,))) if j else (0, 0)
        return (m + dx, m + j - dx, m + dy, m + j - dy)

    def forward(
        self, y: torch.Tensor, x: torch.Tensor, style_index: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """y, x: (N, 3, H, W) 0..255; style_index: (N,) long, which style each y should paint
        (None: all the first)."""
        pad = self.frame_padding()
        y, x = frame(y, pad), frame(x, pad)
        features_y = self.loss_net(y)
        with torch.no_grad():
            target = self.loss_net(x)[self.content_layer]
        if style_index is None:
            style_index = torch.zeros(len(y), dtype=torch.long, device=y.device)
        content = y.new_zeros((), dtype=torch.float32)
        style = y.new_zeros((), dtype=torch.float32)
        for s in style_index.unique().tolist():
            rows = style_index == s  # (N,) bool
            share = rows.float().mean()
            spec = self.styles[s]
            c = content_loss(features_y[self.content_layer][rows], target[rows])
            if self.normalize:
                c = c / target[rows].float().pow(2).mean()
            content = content + share * spec.content_weight * c
            mine = {k: features_y[k][rows] for k in spec.layers}
            style = style + share * spec.style_weight * style_loss(
                mine, self.targets[s], self.style_weights[s], self.style_statistic
            )
        terms = {
            "content_loss": content,
            "style_loss": style,
            "tv_loss": self.tv_weight * total_variation_loss(y.float()),
        }
        terms["total_loss"] = torch.stack(list(terms.values())).sum()
        return terms


class PerceptualLoss(MultiStyleLoss):
    """The loss for one painting."""

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
        margin: int = 8,
        style_statistic: str = "gram",
    ):
        super().__init__(
            loss_net,
            [StyleSpec(style_image, style_layers, style_weight, content_weight)],
            content_layer=content_layer,
            tv_weight=tv_weight,
            jitter=jitter,
            margin=margin,
            style_statistic=style_statistic,
        )
