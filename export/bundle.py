"""Train and export the styles bundled in function/models, one after another.

    python -m export.bundle --only starry_night -- --arch fast --steps 1000 --image-size 256

Flags after `--` are training.train's (`python -m training.train --help`); --style, --data and
--out are filled in per style, after the painting's own flags in CATALOG (`training_flags`),
which the command line's override. A style whose run already has `last.pt` at the requested step
count is not retrained, so an interrupted bundle resumes. Each network is then exported with the
parity check: the johnson arch to NAME.onnx, any other to NAME.ARCH.onnx. `--train-only` skips
the export (train on a GPU machine, export where the function's pinned onnxruntime checks parity).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from export.onnx_export import write_model
from export.parity import format_report
from training.checkpoint import load
from training.errors import UsageError
from training.train import TrainConfig, parse_args, train

log = logging.getLogger("bundle")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Painting:
    name: str  # file stem in ../shared/data/styles and the API's style name
    title: str
    artist: str
    date: str
    # Training flags this painting needs beyond the shared ones, put before them so the command
    # line's win. Found by training, not guessed: see the model card in README.md.
    training_flags: tuple[str, ...] = ()


def flags(**settings: object) -> tuple[str, ...]:
    """training.train's flags for TrainConfig fields: flags(style_size=1024) is
    ("--style-size", "1024")."""
    return tuple(x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v)))


# Public-domain paintings (see ../shared/data/SOURCES.md), in gallery order.
CATALOG = (
    Painting("starry_night", "The Starry Night", "Vincent van Gogh", "1889"),
    Painting("great_wave", "The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1830-1832"),
    Painting("the_scream", "The Scream", "Edvard Munch", "1893"),
    # Kandinsky's planes did the same as Picabia's (below) at content weight 4; the udnie recipe
    # (content 24 to 3,000 steps, then 12) removed the bands there too. 8 for 250 steps more
    # painted more of the palette and brought long diagonal lines back.
    Painting(
        "composition_vii", "Composition VII", "Wassily Kandinsky", "1913", flags(content_weight=12)
    ),
    # At content weight 4 Picabia's shaded grey planes came back as diagonal bands ~20 px apart
    # over anything flat and the photo was lost; 24 kept the photo but left a tinted one; 12
    # (the last 500 steps) kept it and painted the planes, without the bands.
    Painting(
        "udnie",
        "Udnie (Young American Girl, The Dance)",
        "Francis Picabia",
        "1913",
        flags(content_weight=12),
    ),
    Painting("water_lilies", "Water Lilies", "Claude Monet", "1919"),
    Painting(
        "wheat_field_with_cypresses", "Wheat Field with Cypresses", "Vincent van Gogh", "1889"
    ),
    # Klimt's flat gold background and Seurat's figures fill the coarse taps' statistics: with
    # `s32` the network traded the photo for them within 500 steps; without it the photo stayed,
    # and without `s16` too Seurat's figures stopped being painted over everything. At 512 px the
    # mosaic and the dots are 1-2 px; at ~1000 px they are strokes (docs/*_painting_size.jpg).
    Painting(
        "the_kiss",
        "The Kiss",
        "Gustav Klimt",
        "1907-1908",
        flags(
            style_layers="s1:1,s2:1,s4:1,s8:1,s16:1",
            style_size=1024,
            style_weight=3,
            content_weight=24,
        ),
    ),
    Painting(
        "grande_jatte",
        "A Sunday Afternoon on the Island of La Grande Jatte",
        "Georges Seurat",
        "1884-1886",
        flags(
            style_layers="s1:1,s2:1,s4:1,s8:1", style_size=1000, style_weight=4, content_weight=8
        ),
    ),
    Painting(
        "shipwreck_of_the_minotaur", "The Shipwreck of the Minotaur", "J. M. W. Turner", "c. 1810"
    ),
    # The source names no title; SOURCES.md dates it to his Paris cubist period.
    Painting("mondrian_cubist_composition", "Cubist Composition", "Piet Mondrian", "c. 1912-1914"),
)


def run_name(name: str, arch: str) -> str:
    """NAME for the johnson arch, NAME.ARCH for any other: a run folder's name, a model's stem."""
    return name if arch == "johnson" else f"{name}.{arch}"


def model_file(models: Path, name: str, arch: str) -> Path:
    return models / f"{run_name(name, arch)}.onnx"


def training_config(
    painting: Painting, train_flags: list[str], *, data: Path, styles_dir: Path, runs: Path
) -> TrainConfig:
    """The painting's run: its own flags, then the command line's, resuming its last.pt."""
    style = str(styles_dir / f"{painting.name}.jpg")
    own = ["--style", style, "--data", str(data), "--out", "-"]
    cfg = parse_args([*painting.training_flags, *train_flags, *own])
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
