"""Teach the bundled network a new painting in minutes on a CPU: only the painting's norm
parameters learn, against the bundled network's frozen convolutions (Dumoulin et al. 2017).

    python -m training.add_style --painting my_painting.jpg --name my_style \
        --data PHOTOS --out my_models

writes my_models/my_style.fast.onnx (with its tile graph and the painting's thumbnail), which
the function serves beside the bundled styles: MODEL_DIR=my_models:function/models. The run
is my_models/runs/my_style (samples/ shows progress); rerunning the command resumes it. Flags
after `--` go to training.train (`python -m training.train --help`).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from stylefn.contract import STYLES_KEY, TILES_SUFFIX
from training.checkpoint import load
from training.errors import UsageError
from training.train import parse_args, train

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "function" / "models"
# The norm parameters alone (a few thousand numbers) take a larger step than a whole network's
# 1e-3: at 5e-3 a painting's style loss settles within ~400 steps (docs/model_card.md).
DEFAULT_FLAGS = (
    "--image-size", "256", "--batch-size", "4", "--lr", "5e-3", "--tv-weight", "10",
    "--sample-every", "100", "--save-every", "50", "--log-every", "10", "--workers", "1",
)  # fmt: skip


def bundled_trunk() -> Path:
    """The multi-style model among the bundled ones: the network a new style joins."""
    import onnx  # the export extra's; only read here, for the metadata

    for path in sorted(BUNDLED.glob("*.onnx")):
        if path.name.endswith(TILES_SUFFIX):
            continue
        props = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if STYLES_KEY in props:
            return path
    raise UsageError(
        f"no multi-style model in {BUNDLED}; pass --trunk with a multi-style checkpoint "
        "or .onnx model"
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    p = argparse.ArgumentParser(
        prog="python -m training.add_style", description=__doc__.split("\n")[0]
    )
    p.add_argument("--painting", required=True, type=Path, help="the new style's image")
    p.add_argument("--name", help="the API's style name (default: the painting's file name)")
    p.add_argument("--title", help="the painting's title")
    p.add_argument("--artist", default="unknown")
    p.add_argument("--data", required=True, help="a folder of training photos")
    p.add_argument("--out", required=True, type=Path, help="folder for NAME.ARCH.onnx and runs/")
    p.add_argument("--steps", type=int, default=400)  # ~6 min on 2 cores: model_card.md
    p.add_argument(
        "--trunk", help=f"the network to join (default: the multi-style model in {BUNDLED})"
    )
    args = p.parse_args(own)
    name = args.name or args.painting.stem
    if not name.isidentifier():
        p.error(
            f"--name {name!r}: use letters, digits and underscores (it is the API's style name)"
        )
    try:
        trunk = args.trunk or str(bundled_trunk())
        cfg = parse_args(
            [
                *DEFAULT_FLAGS, *extra,
                "--style", f"{name}={args.painting}", "--data", args.data,
                "--out", str(args.out / "runs" / name), "--steps", str(args.steps),
                "--trunk", trunk,
            ]
        )  # fmt: skip
        cfg.command = "python -m training.add_style " + shlex.join(argv)  # what resumes it
        last = train(cfg)
        from export.onnx_export import write_model
        from export.parity import format_report

        out = args.out / f"{name}.{load(last)['model_config']['arch']}.onnx"
        report = write_model(
            last, out, name=name, title=args.title, artist=args.artist, painting=args.painting
        )
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(format_report(report))
    print(f"wrote {out}; serve it with MODEL_DIR={args.out}:function/models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
