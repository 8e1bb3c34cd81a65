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


def start_from_trunk(model: TransformerNet, trunk: dict[str, torch.Tensor]) -> None:
    """The trunk's convolutions, and every style's norms at the mean of the trunk's styles: a
    neutral start, where each new style then finds its own."""
    norms = set(norm_parameters(model))
    state = {
        k: v.mean(0, keepdim=True).expand_as(model.state_dict()[k]).clone() if k in norms else v
        for k, v in trunk.items()
    }
    model.load_state_dict(state)


def freeze_all_but_norms(model: nn.Module) -> None:
    norms = set(norm_parameters(model))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in norms)
