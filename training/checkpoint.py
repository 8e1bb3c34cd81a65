"""Self-describing checkpoints: the network can be rebuilt from the file alone."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import torch

from training.errors import UsageError
from training.model import ModelConfig, TransformerNet
from training.torch_files import load_torch_file

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "model_config", "step", "style_name", "style_image_sha256", "loss_net")


def save(
    path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, **meta
) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        # contiguous copies: a channels_last state dict would carry its strides into the file
        "model": {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        **meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> dict:
    ckpt = load_torch_file(path, "checkpoint", kind="readable PyTorch checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise UsageError(f"checkpoint {path}: not written by training.train (missing {missing})")
    return ckpt


def load_model(path: str | Path) -> tuple[TransformerNet, dict]:
    """The trained network in eval mode, plus the checkpoint's metadata (everything else)."""
    ckpt = load(path)
    model = TransformerNet(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}
    return model.eval(), meta
