"""A trained network's convolutions as the frozen trunk of new styles (training.add_style):
only each style's norm parameters learn (Dumoulin et al. 2017, sec. 4)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from training import checkpoint
from training.model import StyleNorm, TransformerNet


def load_trunk(path: str) -> dict:
    """A checkpoint, or the checkpoint an exported model carries (export.unpack)."""
    if path.endswith(".onnx"):
        from export.unpack import checkpoint_from_onnx  # onnx is only needed for this case

        return checkpoint_from_onnx(Path(path))[1]
    return checkpoint.load(path)


def norm_parameters(model: nn.Module) -> list[str]:
    """The state-dict names of every StyleNorm's weight and bias: all a style owns."""
    return [
        f"{name}.{p}"
        for name, module in model.named_modules()
        if isinstance(module, StyleNorm)
        for p in ("weight", "bias")
    ]


def start_from_trunk(model: TransformerNet, trunk: dict, names: list[str]) -> None:
    """The trunk's convolutions; each style's norms start at the trunk's own row for a style of
    that name (relearning it, e.g. with new loss settings), else at the mean of the trunk's
    styles: a neutral start, where a new style then finds its own."""
    norms = set(norm_parameters(model))
    own = [s["name"] for s in trunk["styles"]]
    rows = [own.index(n) if n in own else None for n in names]

    def start(k: str, v: torch.Tensor) -> torch.Tensor:  # v: (S, C) for a norm
        if k not in norms:
            return v
        return torch.stack([v.mean(0) if r is None else v[r] for r in rows])

    model.load_state_dict({k: start(k, v) for k, v in trunk["model"].items()})


def freeze_all_but_norms(model: nn.Module) -> None:
    norms = set(norm_parameters(model))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in norms)
