"""Self-describing checkpoints: the network can be rebuilt from the file alone.

`styles` lists the network's styles in order (training.styles.StyleEntry: name, title, artist,
painting hash and loss settings). Format 1 files, from before multi-style networks, named one
style (`style_name`, `style_image_sha256`); they load as a one-style list. A one-style file also
gets those two keys on load, which single-style tools (export) read.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import torch

from training.errors import UsageError
from training.model import ModelConfig, TransformerNet, upgrade_state_dict
from training.torch_files import load_torch_file

FORMAT_VERSION = 2
REQUIRED_KEYS = ("model", "model_config", "step", "loss_net")


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
    if "styles" not in ckpt and "style_name" not in ckpt:
        missing.append("styles")
    if missing:
        raise UsageError(f"checkpoint {path}: not written by training.train (missing {missing})")
    if "styles" not in ckpt:  # format 1
        ckpt["styles"] = [{"name": ckpt["style_name"], "sha256": ckpt["style_image_sha256"]}]
        ckpt["model"] = upgrade_state_dict(ckpt["model"])
    if len(ckpt["styles"]) == 1:
        ckpt["style_name"] = ckpt["styles"][0]["name"]
        ckpt["style_image_sha256"] = ckpt["styles"][0]["sha256"]
    return ckpt


def load_model(path: str | Path) -> tuple[TransformerNet, dict]:
    """The trained network in eval mode, plus the checkpoint's metadata (everything else)."""
    ckpt = load(path)
    model = TransformerNet(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer")}
    return model.eval(), meta
