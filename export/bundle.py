"""Train and export the styles bundled in function/models, one after another.

    python -m export.bundle --data ../shared/data/photos --styles-dir ../shared/data/styles \
        --runs runs/bundled --models function/models --steps 800 --image-size 128

Each style is trained by training.train with the same flags (a run that already has
`last.pt` at the requested step count is not retrained), then exported with the parity check.
`--arch fast` writes NAME.fast.onnx beside NAME.onnx; `--train-only` skips the export (train on a
GPU machine, export where the function's pinned onnxruntime checks parity).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from export.onnx_export import write_model
from export.parity import format_report
from training.checkpoint import load
from training.train import TrainConfig, train

log = logging.getLogger("bundle")


@dataclass(frozen=True)
class Painting:
    name: str  # file stem in ../shared/data/styles and the API's style name
    title: str
    artist: str
    date: str


# Public-domain paintings (see ../shared/data/SOURCES.md), in gallery order.
CATALOG = (
    Painting("starry_night", "The Starry Night", "Vincent van Gogh", "1889"),
    Painting("great_wave", "The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1830-1832"),
    Painting("the_scream", "The Scream", "Edvard Munch", "1893"),
    Painting("composition_vii", "Composition VII", "Wassily Kandinsky", "1913"),
    Painting("udnie", "Udnie (Young American Girl, The Dance)", "Francis Picabia", "1913"),
    Painting("water_lilies", "Water Lilies", "Claude Monet", "1919"),
)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m export.bundle", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--styles-dir", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=Path("runs/bundled"))
    p.add_argument("--models", type=Path, default=Path("function/models"))
    p.add_argument("--only", nargs="*", help="style names to do (default: the whole catalog)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--identity-warmup-steps", type=int, default=100)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--style-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--loss-net", default="random-multiscale")
    p.add_argument("--vgg-weights", help="torchvision-format VGG16 file for --loss-net imagenet")
    p.add_argument("--content-weight", type=float)
    p.add_argument("--style-weight", type=float)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--arch", default="johnson", help="johnson | fast")
    p.add_argument("--time-budget", type=float, help="seconds per style; stop and save then")
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--fp16", action="store_true", help="export float16 weights (GPU serving)")
    args = p.parse_args(argv)

    paintings = [c for c in CATALOG if not args.only or c.name in args.only]
    for painting in paintings:
        suffix = "" if args.arch == "johnson" else f".{args.arch}"
        run = args.runs / f"{painting.name}{suffix}"
        last = run / "last.pt"
        if not last.is_file() or (load(last)["step"] < args.steps and not args.time_budget):
            cfg = TrainConfig(
                style=str(args.styles_dir / f"{painting.name}.jpg"),
                data=str(args.data),
                out=str(run),
                steps=args.steps,
                batch_size=args.batch_size,
                image_size=args.image_size,
                style_size=args.style_size,
                loss_net=args.loss_net,
                vgg_weights=args.vgg_weights,
                content_weight=args.content_weight,
                style_weight=args.style_weight,
                identity_warmup_steps=args.identity_warmup_steps,
                device=args.device,
                amp=args.amp,
                channels_last=args.channels_last,
                workers=args.workers,
                arch=args.arch,
                time_budget=args.time_budget,
                checkpoint_every=500,
                sample_every=250,
                resume=str(last) if last.is_file() else None,
            )
            train(cfg)
        if args.train_only:
            continue
        report = write_model(
            last,
            args.models / f"{painting.name}{suffix}.onnx",
            name=painting.name,
            title=painting.title,
            artist=painting.artist,
            fp16=args.fp16,
        )
        print(f"{painting.name}\n{format_report(report)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
