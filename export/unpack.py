"""Turn trained weights back into training checkpoints, to fine-tune or re-export them.

    python -m export.unpack /work/.device/2/weights_*.pt --runs runs/gpu
    python -m export.unpack function/models/*.fast.onnx --runs runs/finetune

A weights file from benchmarks/gpu_session.sh maps run names (`starry_night`,
`starry_night.fast`, ...) to checkpoints without optimizer state. A shipped style model
(NAME.ARCH.onnx) carries its network's weights and everything a checkpoint records in its
metadata, so it unpacks too. Each becomes RUNS/NAME/last.pt, ready for
`python -m export.bundle --runs RUNS` (which continues training it to a larger --steps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import onnx
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from export.bundle import run_name
from export.onnx_export import RUN_LOSS_SETTINGS, STYLE_LOSS_SETTINGS, STYLES_KEY
from stylefn.contract import PAINTING_KEY, style_painting_key
from training.checkpoint import FORMAT_VERSION, REQUIRED_KEYS
from training.errors import UsageError
from training.model import build_model, upgrade_state_dict

# export/wrapper.py's UInt8Stylizer holds the trained network as `net`.
NET_PREFIX = "net."


def checkpoint_from_onnx(path: Path) -> tuple[str, dict]:
    """The run name (NAME.ARCH, or NAME for johnson) and a weights-only checkpoint."""
    try:
        model = onnx.load(str(path))
    except DecodeError as e:
        raise UsageError(f"{path}: not an ONNX model ({e})") from None
    props = {p.key: p.value for p in model.metadata_props}
    missing = [k for k in ("name", "model_config", "training_steps", "loss_net") if k not in props]
    if missing or props.get("graph"):
        raise UsageError(f"{path}: not a style model written by `python -m export` ({missing})")
    config = json.loads(props["model_config"])
    weights = upgrade_state_dict(
        {
            init.name.removeprefix(NET_PREFIX): torch.from_numpy(numpy_helper.to_array(init).copy())
            for init in model.graph.initializer
            if init.name.startswith(NET_PREFIX)
        }
    )
    net = build_model(config)
    expected = net.state_dict()
    absent = sorted(set(expected) - set(weights))
    if absent:
        raise UsageError(f"{path}: the graph lacks the network's weights {absent[:3]}...")
    net.load_state_dict({k: weights[k].float() for k in expected})
    image_size = props.get("image_size", "")
    if STYLES_KEY in props:
        listed = json.loads(props[STYLES_KEY])
        settings = listed[0]["loss_settings"]
    else:
        settings = json.loads(props.get("loss_settings", "{}"))
        listed = [props | {"loss_settings": settings}]
    styles = [
        {
            "name": s["name"],
            "title": s.get("title", s["name"]),
            "artist": s.get("artist", "unknown"),
            "sha256": s["style_image_sha256"],
        }
        | {k: s["loss_settings"].get(k) for k in STYLE_LOSS_SETTINGS}
        for s in listed
    ]
    ckpt = {
        "format_version": FORMAT_VERSION,
        "model": net.state_dict(),
        "model_config": config,
        "step": int(props["training_steps"]),
        "styles": styles,
        "loss_net": props["loss_net"],
        "train_config": {k: settings[k] for k in RUN_LOSS_SETTINGS if k in settings}
        | ({"image_size": int(image_size)} if image_size else {}),
        "unpacked_from": path.name,
        "thumbnails": carried_thumbnails(props, styles),
    }
    return run_name(props["name"], config.get("arch", "johnson")), ckpt


def carried_thumbnails(props: dict[str, str], styles: list[dict]) -> dict[str, str]:
    """A model's painting thumbnails by image hash: re-exported (training.join_styles), the
    model keeps them where the paintings themselves are not on that machine."""
    multi = STYLES_KEY in props
    keys = {s["sha256"]: style_painting_key(s["name"]) if multi else PAINTING_KEY for s in styles}
    return {sha: props[key] for sha, key in keys.items() if key in props}


def checkpoints_in(file: Path) -> dict[str, dict]:
    if file.suffix == ".onnx":
        name, ckpt = checkpoint_from_onnx(file)
        return {name: ckpt}
    return torch.load(file, map_location="cpu", weights_only=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.unpack", description=__doc__.split("\n")[0])
    p.add_argument(
        "files", nargs="+", type=Path, help="weights_*.pt files or NAME.ARCH.onnx models"
    )
    p.add_argument("--runs", type=Path, default=Path("runs/gpu"))
    args = p.parse_args(argv)
    for file in args.files:
        try:
            found = checkpoints_in(file)
        except (UsageError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for name, ckpt in found.items():
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
