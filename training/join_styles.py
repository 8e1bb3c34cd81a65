"""Put styles learnt against a network's frozen trunk (training.add_style, or training.train
--trunk) into that network: one file again, whose styles mix with each other.

    python -m training.join_styles --network function/models/bundled.fast.onnx \
        --styles my_models/runs/my_style/last.pt --out runs/joined.pt
    python -m export --checkpoint runs/joined.pt --out DIR/bundled.fast.onnx --name bundled

A style of the same name replaces the network's (relearnt, e.g. with new loss settings: add_style
starts it from the network's own); any other is appended. Each style's checkpoint must have been
trained against exactly these convolutions (its --trunk: this checkpoint or exported model).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from training import checkpoint
from training.errors import UsageError
from training.model import ModelConfig, TransformerNet
from training.trunk import load_trunk, norm_parameters

log = logging.getLogger("training")


def join(network: dict, added: list[dict]) -> dict:
    """`network`'s checkpoint with each of `added`'s styles (one-row norms each) put in."""
    norms = set(norm_parameters(TransformerNet(ModelConfig(**network["model_config"]))))
    state = dict(network["model"])
    styles = list(network["styles"])
    for ckpt in added:
        name = ckpt["styles"][0]["name"]
        if len(ckpt["styles"]) != 1:
            raise UsageError(f"{name}: join one style per checkpoint, not {len(ckpt['styles'])}")
        same_layers = ckpt["model"].keys() == state.keys()
        other = [
            k
            for k, v in ckpt["model"].items()
            if same_layers and k not in norms and not torch.equal(v, state[k])
        ]
        if other or not same_layers:
            raise UsageError(
                f"{name} was not trained against this network's frozen convolutions "
                f"({len(other) or 'its layers'} differ); train it with --trunk on this network"
            )
        names = [s["name"] for s in styles]
        row = names.index(name) if name in names else len(names)
        for k in norms:  # (S, C) rows: replace one, or append
            state[k] = torch.cat([state[k][:row], ckpt["model"][k], state[k][row + 1 :]])
        styles[row : row + 1] = ckpt["styles"]
        log.info("%s %s", "replaced" if row < len(names) else "appended", name)
    grown = len(styles) != len(network["styles"])
    joined = {k: v for k, v in network.items() if not (grown and k == "optimizer")}
    return joined | {
        "model": state,
        "styles": styles,
        "model_config": network["model_config"] | {"num_styles": len(styles)},
        "joined": [c["styles"][0]["name"] for c in added],
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(
        prog="python -m training.join_styles", description=__doc__.split("\n")[0]
    )
    p.add_argument("--network", required=True, help="the multi-style checkpoint or .onnx model")
    p.add_argument(
        "--styles", required=True, nargs="+", type=Path, help="checkpoints trained with --trunk"
    )
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        joined = join(load_trunk(args.network), [checkpoint.load(s) for s in args.styles])
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(joined, args.out)
    print(f"wrote {args.out}: {len(joined['styles'])} styles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
