"""Train and export the styles bundled in function/models, one after another.

    python -m export.bundle --only starry_night -- --arch fast --steps 1000 --image-size 256

Flags after `--` are training.train's (`python -m training.train --help`); --style, --data and
--out are filled in per style; each painting's own loss settings (training.paintings.CATALOG)
apply where the command line sets none. A style whose run already has `last.pt` at the requested step
count is not retrained, so an interrupted bundle resumes. Each network is then exported with the
parity check: the johnson arch to NAME.onnx, any other to NAME.ARCH.onnx. `--train-only` skips
the export (train on a GPU machine, export where the function's pinned onnxruntime checks parity).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from export.onnx_export import write_model
from export.parity import format_report
from training.checkpoint import load
from training.errors import UsageError
from training.paintings import CATALOG, Painting
from training.train import TrainConfig, parse_args, train

log = logging.getLogger("bundle")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def run_name(name: str, arch: str) -> str:
    """NAME for the johnson arch, NAME.ARCH for any other: a run folder's name, a model's stem."""
    return name if arch == "johnson" else f"{name}.{arch}"


def model_file(models: Path, name: str, arch: str) -> Path:
    return models / f"{run_name(name, arch)}.onnx"


def training_config(
    painting: Painting, train_flags: list[str], *, data: Path, styles_dir: Path, runs: Path
) -> TrainConfig:
    """The painting's run, resuming its last.pt; training.styles gives it the painting's own
    loss settings where the command line sets none."""
    style = str(styles_dir / f"{painting.name}.jpg")
    cfg = parse_args([*train_flags, "--style", style, "--data", str(data), "--out", "-"])
    run = runs / run_name(painting.name, cfg.arch)
    last = run / "last.pt"
    return replace(cfg, out=str(run), resume=str(last) if last.is_file() else cfg.resume)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    own, train_flags = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    p = argparse.ArgumentParser(prog="python -m export.bundle", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=SHARED / "photos")
    p.add_argument("--styles-dir", type=Path, default=SHARED / "styles")
    p.add_argument("--runs", type=Path, default=Path("runs/bundled"))
    p.add_argument("--models", type=Path, default=Path("function/models"))
    p.add_argument("--only", nargs="*", help="style names to do (default: the whole catalog)")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--fp16", action="store_true", help="export float16 weights (GPU serving)")
    args = p.parse_args(own)
    unknown = set(args.only or ()) - {c.name for c in CATALOG}
    if unknown:
        p.error(f"unknown styles {sorted(unknown)}; the catalog has {[c.name for c in CATALOG]}")
    for painting in (c for c in CATALOG if not args.only or c.name in args.only):
        cfg = training_config(
            painting, train_flags, data=args.data, styles_dir=args.styles_dir, runs=args.runs
        )
        last = Path(cfg.out) / "last.pt"
        try:
            if not last.is_file() or (
                load(last)["step"] < (cfg.steps or 0) and not cfg.time_budget
            ):
                train(cfg)
        except UsageError as e:
            print(f"error: {painting.name}: {e}", file=sys.stderr)
            return 2
        if args.train_only:
            continue
        report = write_model(
            last,
            model_file(args.models, painting.name, cfg.arch),
            name=painting.name,
            title=painting.title,
            artist=painting.artist,
            fp16=args.fp16,
        )
        print(f"{painting.name}\n{format_report(report)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
