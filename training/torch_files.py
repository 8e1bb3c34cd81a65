"""Reading a file written by torch.save, with errors a user can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from training.errors import UsageError


def load_torch_file(path: str | Path, label: str, kind: str = "PyTorch state dict") -> Any:
    """torch.load on the CPU, tensors only; a missing or unreadable file is a UsageError that
    names it as `label PATH` (the flag or role the user gave it) and says what it should be."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{label} {path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not its own
        raise UsageError(f"{label} {path}: not a {kind} ({e})") from e
