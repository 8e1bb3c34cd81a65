"""What a person looks at during training: sample grids and the loss curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float 0..255 -> (N, H, W, 3) uint8, rounded and clamped."""
    return images.detach().float().round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def save_samples(
    model: torch.nn.Module, photos: torch.Tensor, path: Path, num_styles: int = 1
) -> None:
    """A grid: the photos on top, then a row of the network's outputs per style."""
    device = next(model.parameters()).device
    mixes = torch.eye(num_styles, device=device)  # (S, S): each row paints one style
    stylized = [torch.cat([model(p[None].to(device), mix) for p in photos]) for mix in mixes]
    rows = [np.concatenate(list(to_uint8_hwc(t)), axis=1) for t in (photos, *stylized)]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path, quality=90)


def save_loss_plot(log_path: Path, out_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    if not Path(log_path).is_file():  # stopped before the first log line
        return
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line]
    if not records:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    keys = (
        "total_loss",
        "content_loss",
        "style_loss",
        "tv_loss",
        "reconstruction_loss",
        "distill_loss",
    )
    for key in keys:
        points = [(r["step"], r[key]) for r in records if r.get(key, 0) > 0]
        if points:
            ax.plot(*zip(*points, strict=True), label=key.removesuffix("_loss"))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
