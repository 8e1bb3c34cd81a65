"""Export a training checkpoint to a self-contained ONNX style model, proven equal to PyTorch.

    python -m export --checkpoint runs/starry_night/last.pt --out function/models/starry_night.onnx \
        --title "The Starry Night" --artist "Vincent van Gogh"

Graph contract (what function/ relies on): input `image` uint8 (N, H, W, 3) RGB, output
`stylized` uint8 (N, H, W, 3), N/H/W dynamic. ONNX names are single-assignment, so the output
cannot reuse the input's name. Cast, layout, normalization, padding and the final
round + clamp are all inside the graph. Beside it, NAME.ARCH.tiles.onnx holds the same network
for painting in tiles (export/wrapper.py TileStylizer): it also takes `norm_stats` float
(2, S) and `use_norm_stats` float () (0: plain instance norm, 1: the given statistics) and
returns the statistics it computed, `norm_stats_out` (N, 2, S). Both files are written only
if parity holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tomllib
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import onnx
import torch

from export.painting import painting_props
from export.parity import ParityError, check_parity, default_photo_dir, format_report
from export.wrapper import TileStylizer, UInt8Stylizer
from stylefn.contract import (  # the graph and file names the function reads
    INPUT_NAME,
    OUTPUT_NAME,
    STATS_INPUT,
    STATS_OUTPUT,
    STYLE_WEIGHTS_INPUT,
    STYLES_KEY,
    TILES_SUFFIX,
    USE_STATS_INPUT,
)
from training.checkpoint import load_model
from training.errors import UsageError
from training.model import TransformerNet

log = logging.getLogger("export")

DEFAULT_OPSET = 18
ROOT = Path(__file__).resolve().parents[1]


def project_version() -> str:
    try:
        return metadata.version("styleserve")
    except metadata.PackageNotFoundError:  # run from a checkout that was not pip-installed
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# The loss settings every style of a run shares; each style's own (painting size, taps and
# weights) come from its entry in the checkpoint's `styles`.
RUN_LOSS_SETTINGS = ("content_layer", "style_statistic", "tv_weight", "loss_jitter", "loss_margin")
STYLE_LOSS_SETTINGS = ("content_weight", "style_layers", "style_weight", "style_size", "trim")


def loss_settings(train_cfg: dict, style: dict) -> str:
    """One style's loss as its run used it, resolved from the defaults, as JSON."""
    own = {k: style.get(k, train_cfg.get(k)) for k in STYLE_LOSS_SETTINGS}
    shared = {k: train_cfg[k] for k in RUN_LOSS_SETTINGS if k in train_cfg}
    return json.dumps({k: v for k, v in (shared | own).items() if v is not None}, sort_keys=True)


def build_metadata(meta: dict, *, name: str, title: str, artist: str, precision: str) -> dict:
    """The model's metadata_props: every value a string, read by the function's /styles. A
    multi-style model also lists its styles in order (STYLES_KEY), each with its own title,
    artist, painting hash and loss."""
    train_cfg = meta.get("train_config", {})
    distilled = meta.get("distilled_from")
    styles = meta["styles"]
    if len(styles) == 1:
        described = {
            "style_image_sha256": styles[0]["sha256"],
            "loss_settings": loss_settings(train_cfg, styles[0]),
        }
    else:
        described = {
            STYLES_KEY: json.dumps(
                [
                    {
                        "name": s["name"],
                        "title": s["title"],
                        "artist": s["artist"],
                        "style_image_sha256": s["sha256"],
                        "loss_settings": json.loads(loss_settings(train_cfg, s)),
                    }
                    for s in styles
                ]
            )
        }
    return (
        {"name": name, "title": title, "artist": artist}
        | described
        | {
            "training_steps": str(meta["step"]),
            "loss_net": meta["loss_net"],
            "image_size": str(train_cfg.get("image_size", "")),
            "precision": precision,
            "arch": meta["model_config"].get("arch", "johnson"),
            "model_config": json.dumps(meta["model_config"], sort_keys=True),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "project_version": project_version(),
        }
        | (
            {
                "distilled_from": f"{distilled['arch']}, {distilled['step']} steps, {distilled['loss_net']}"
            }
            if distilled
            else {}
        )
    )


def export_onnx(
    net: TransformerNet,
    path: Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    tiles: bool = False,
) -> None:
    """Trace `net` inside the uint8 wrapper (TileStylizer with `tiles`) and write the ONNX
    graph to `path`."""
    dtype = torch.float16 if fp16 else torch.float32
    wrapper = (TileStylizer if tiles else UInt8Stylizer)(net, dtype).eval()
    image = torch.randint(0, 256, (1, 64, 96, 3), dtype=torch.uint8)
    example: tuple[torch.Tensor, ...] = (image,)
    names, outputs = [INPUT_NAME], [OUTPUT_NAME]
    axes = {INPUT_NAME: {0: "N", 1: "H", 2: "W"}, OUTPUT_NAME: {0: "N", 1: "H", 2: "W"}}
    if isinstance(wrapper, TileStylizer):
        example += (torch.zeros(2, wrapper.stats_size), torch.zeros(()))
        names += [STATS_INPUT, USE_STATS_INPUT]
        outputs.append(STATS_OUTPUT)
        axes[STATS_OUTPUT] = {0: "N"}
    num_styles = net.config.num_styles
    if num_styles > 1:
        example += (torch.full((num_styles,), 1.0 / num_styles),)
        names.append(STYLE_WEIGHTS_INPUT)
    # The TorchScript exporter (dynamo=False): our only dynamic part is the pad arithmetic on
    # H and W, which the tracer records as plain shape ops; torch.export would instead need
    # symbolic-shape guards for the modulo/floor-division and an onnxscript dependency, for a
    # graph of standard CNN ops that gains nothing from it.
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter's own chatter (deprecation, constant-folding notes) is not actionable
        # for our users; the checker and the parity check below are what prove the file.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            # Folding would turn a single-style network's norm weights ([1] @ weight) into new,
            # nameless constants, and export.unpack finds the weights by name. ONNX Runtime
            # folds them itself when it loads the graph.
            do_constant_folding=False,
        )


def style_models(folder: Path) -> list[Path]:
    """The style models in `folder`, sorted: every *.onnx but the tile graphs beside them."""
    return sorted(p for p in folder.glob("*.onnx") if not p.name.endswith(TILES_SUFFIX))


def tiles_path(model: Path) -> Path:
    """Where the tile graph of the style model at `model` lives: NAME.ARCH.tiles.onnx."""
    return model.with_name(model.name.removesuffix(".onnx") + TILES_SUFFIX)


def write_model(
    checkpoint: Path,
    out: Path,
    *,
    name: str | None = None,
    title: str | None = None,
    artist: str = "unknown",
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    photo_dir: Path | None = None,
    painting: Path | None = None,
) -> list[dict]:
    """Export the style model and its tile graph (tiles_path), attach metadata, check, prove
    parity; the files appear at `out` and beside it only when both succeed."""
    if opset < 17:
        raise UsageError(f"--opset {opset}: need 17 or newer")
    net, meta = load_model(checkpoint)
    multi = len(meta["styles"]) > 1
    name = name or ("styles" if multi else meta["style_name"])
    title = title or (f"{len(meta['styles'])} styles" if multi else name.replace("_", " ").title())
    if multi and artist == "unknown":  # each style names its own artist in the style list
        artist = "various"
    thumbnail = painting_props(meta, painting)  # before the slow export: a wrong one fails fast
    out.parent.mkdir(parents=True, exist_ok=True)
    tiles = tiles_path(out)
    tmp, tiles_tmp = out.with_name(out.name + ".tmp"), tiles.with_name(tiles.name + ".tmp")
    props = build_metadata(
        meta, name=name, title=title, artist=artist, precision="fp16" if fp16 else "fp32"
    )
    # The model's own metadata, so the tile graph describes itself too, and what it is for.
    tiles_props = props | {"graph": "tiles (export/wrapper.py TileStylizer)"}
    try:
        report = []
        for path, tiled, path_props in (
            (tmp, False, props | thumbnail),
            (tiles_tmp, True, tiles_props),
        ):
            export_onnx(net, path, fp16=fp16, opset=opset, tiles=tiled)
            model = onnx.load(str(path))
            onnx.helper.set_model_props(model, path_props)
            onnx.checker.check_model(model, full_check=True)
            onnx.save(model, str(path))
            report += check_parity(net, path, photo_dir=photo_dir, tolerance=3 if fp16 else 1)
        os.replace(tiles_tmp, tiles)
        os.replace(tmp, out)
        return report
    finally:
        tmp.unlink(missing_ok=True)
        tiles_tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="RUN_DIR/last.pt")
    p.add_argument("--out", required=True, type=Path, help="STYLE.onnx")
    p.add_argument("--name", help="style id used by the API (default: the style image's name)")
    p.add_argument("--title", help="the painting's title")
    p.add_argument("--artist", default="unknown")
    p.add_argument("--fp16", action="store_true", help="float16 weights (for GPU serving)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument(
        "--photos", type=Path, help=f"photos for the parity check (default: {default_photo_dir()})"
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--painting",
        type=Path,
        help="the style image, for the thumbnail the web page shows (default: the path the "
        "checkpoint was trained with, when it is on this machine)",
    )
    args = p.parse_args(argv)
    if args.out.exists() and not args.force:
        # function/models holds the bundled styles: a README command copied literally must not
        # replace one. Serve your own from another folder (MODEL_DIR) or pass --force.
        print(
            f"error: {args.out} exists; pass --force to replace it, or write elsewhere "
            "(e.g. my_models/NAME.onnx, served with MODEL_DIR=my_models)",
            file=sys.stderr,
        )
        return 1
    try:
        report = write_model(
            args.checkpoint, args.out, name=args.name, title=args.title, artist=args.artist,
            fp16=args.fp16, opset=args.opset, photo_dir=args.photos, painting=args.painting,
        )  # fmt: skip
    except (UsageError, ParityError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0
