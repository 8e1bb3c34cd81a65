"""The video stability term (training/stability.py): what it measures, and a real run with it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tests.test_training import read_log, tiny_config
from training.stability import MAX_SHIFT, random_motion, stability_loss, warp
from training.train import train


class Pointwise(nn.Module):
    """Paints each pixel from itself alone: moving the photo moves the painting exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


class OnAGrid(Pointwise):
    """Paints 8x8 blocks on a fixed grid, as a strided network's strokes are."""

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.interpolate(F.avg_pool2d(self.mix(x), 8), scale_factor=8, mode="nearest")


def photos(n: int = 4, side: int = 96) -> torch.Tensor:
    """Smooth random photos with edges, 0..255 (N, 3, S, S)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, side // 8, side // 8, generator=g) * 255
    return F.interpolate(coarse, (side, side), mode="bilinear", align_corners=False)


def test_a_network_that_moves_with_the_photo_scores_the_noise_alone():
    x, mix = photos(), torch.ones(4, 1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        pointwise, grid = Pointwise(), OnAGrid()
        grid.mix = pointwise.mix
        loose = stability_loss(pointwise, x, pointwise(x, mix), mix, g)
        locked = stability_loss(grid, x, grid(x, mix), mix, g)
    noise_only = 3.0 / 255.0  # 2 grey levels of noise through a 1x1 conv of ~unit gain
    assert loose < noise_only**2
    assert locked > 10 * loose


def test_motions_are_small_smooth_and_differ_between_images():
    n, side = 6, 64
    grid = random_motion(n, side, side, torch.Generator().manual_seed(2), torch.device("cpu"))
    identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), [n, 3, side, side], False)
    moved_px = (grid - identity).abs() * side / 2  # (N, H, W, 2)
    assert moved_px.max() < MAX_SHIFT + 6  # the shift, plus zoom, turn and local field
    assert moved_px.mean() > 0.5
    steps = (grid[:, 1:] - grid[:, :-1]).abs().max() * side / 2
    assert steps < 1.5  # neighbours move alike: no tearing
    assert not torch.allclose(grid[0], grid[1])
    x = photos(2, side)
    assert torch.isfinite(warp(x, grid[:2])).all()


def test_a_run_with_the_stability_term_logs_it(photo_dir, style_path, tmp_path):
    train(tiny_config(photo_dir, style_path, tmp_path, steps=4, stability_weight=100.0))
    records = [r for r in read_log(tmp_path) if "stability_loss" in r]
    assert len(records) == 4
    assert all(0 < r["stability_loss"] < r["total_loss"] for r in records)
