"""The feature transforms of training/arbitrary_probe.py: each gives the content the style's
statistics, and a perfect decoder's stand-in moves the photo toward them."""

from __future__ import annotations

import torch

from training.arbitrary_probe import adain, wct


def features(channels: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(channels, channels, generator=g)
    return mix @ torch.rand(channels, n, generator=g) * 3 + torch.rand(channels, 1, generator=g)


def test_adain_gives_the_style_channel_means_and_deviations():
    content, style = features(8, 500, 0), features(8, 700, 1)
    out = adain(content, style)
    assert torch.allclose(out.mean(1), style.mean(1), atol=1e-4)
    assert torch.allclose(out.std(1), style.std(1), rtol=1e-3)
    assert torch.isfinite(out).all()


def test_wct_gives_the_style_covariance_which_adain_does_not():
    content, style = features(8, 500, 2), features(8, 700, 3)

    def cov(f: torch.Tensor) -> torch.Tensor:
        c = f - f.mean(1, keepdim=True)
        return c @ c.T / (f.shape[1] - 1)

    out = wct(content, style)
    assert torch.allclose(out.mean(1), style.mean(1), atol=1e-3)
    assert torch.allclose(cov(out), cov(style), atol=1e-2 * cov(style).abs().max())
    assert not torch.allclose(
        cov(adain(content, style)), cov(style), atol=1e-1 * cov(style).abs().max()
    )
