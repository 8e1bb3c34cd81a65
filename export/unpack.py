"""Unpack the weight files that benchmarks/gpu_session.sh brings back from a GPU machine.

    python -m export.unpack /work/.device/2/weights_*.pt --runs runs/gpu

Each file maps run names (`starry_night`, `starry_night.fast`, ...) to checkpoints without
optimizer state; each becomes RUNS/NAME/last.pt, ready for `python -m export.bundle --runs RUNS`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from training.checkpoint import REQUIRED_KEYS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.unpack", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--runs", type=Path, default=Path("runs/gpu"))
    args = p.parse_args(argv)
    for file in args.files:
        for name, ckpt in torch.load(file, map_location="cpu", weights_only=True).items():
            missing = [k for k in REQUIRED_KEYS if k not in ckpt]
            if missing:
                print(f"error: {file}: {name} is not a training checkpoint ({missing})")
                return 1
            out = args.runs / name / "last.pt"
            out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(ckpt, out)
            print(f"{out}: step {ckpt['step']}, {ckpt['model_config']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
