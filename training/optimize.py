"""A loss network's ceiling: optimise one photo's pixels directly (Gatys et al. 2016).

    python -m training.optimize --photo ../shared/data/eval/kodim23.png \
        --style ../shared/data/styles/starry_night.jpg --out docs/loss_taps.jpg \
        --content-layer s4,s8 --content-weight 0.3,1,3

What a feed-forward network can at best learn from a loss: no network, no training set, a
minute of CPU per setting. Comma-separated values sweep a setting; every combination becomes a
labelled tile of one contact sheet, the photo and the painting first.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageOps
from tqdm import tqdm

from training import data, losses
from training.errors import UsageError
from training.loss_nets import DEFAULTS, LOSS_NETS, build_loss_net
from training.report import to_uint8_hwc
from training.styles import parse_style_layers

log = logging.getLogger("optimize")


@dataclass(frozen=True)
class Setting:
    content_layer: str
    content_weight: float
    style_weight: float
    style_size: int
    style_layers: str  # name:weight,... as in training.train
    style_statistic: str = "cov"  # losses.style_statistics


def optimize(
    loss_net: torch.nn.Module,
    photo: torch.Tensor,
    style_path: Path,
    s: Setting,
    steps: int,
) -> torch.Tensor:
    """(1, 3, H, W) float 0..255 photo -> its stylized pixels, same shape."""
    criterion = losses.PerceptualLoss(
        loss_net,
        data.load_style_image(style_path, s.style_size),
        content_layer=s.content_layer,
        style_layers=parse_style_layers(s.style_layers),
        content_weight=s.content_weight,
        style_weight=s.style_weight,
        style_statistic=s.style_statistic,
    )
    pixels = (
        photo.contiguous().clone().requires_grad_(True)
    )  # start from the photo, as Johnson's targets do
    # L-BFGS, as Gatys et al.: Adam on raw pixels leaves high-frequency noise at any useful rate.
    opt = torch.optim.LBFGS([pixels], lr=1.0, max_iter=steps, history_size=20)
    bar = tqdm(total=steps, desc=label(s), unit="eval", leave=False)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = criterion(pixels.clamp(0, 255), photo)["total_loss"]
        loss.backward()
        bar.update(1)
        return loss

    opt.step(closure)
    bar.close()
    with torch.no_grad():
        pixels.clamp_(0, 255)
    return pixels.detach()


def label(s: Setting, sep: str = " ") -> str:
    """The weights, then the style taps (what a --style-layers sweep changes); a tile's caption
    puts them on two lines."""
    return (
        f"content {s.content_layer} x{s.content_weight:g}, style x{s.style_weight:g} "
        f"@{s.style_size}px, {s.style_statistic}{sep}{s.style_layers}"
    )


def tile(image: torch.Tensor, caption: str, height: int) -> Image.Image:
    img = Image.fromarray(to_uint8_hwc(image)[0])
    img = img.resize((round(img.width * height / img.height), height), Image.Resampling.LANCZOS)
    ImageDraw.Draw(img).text((6, 4), caption, fill="white", stroke_width=2, stroke_fill="black")
    return img


def sheet(tiles: list[Image.Image], columns: int) -> Image.Image:
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    out = Image.new("RGB", (columns * w, rows * h), "white")
    for i, t in enumerate(tiles):
        out.paste(t, ((i % columns) * w, (i // columns) * h))
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(
        prog="python -m training.optimize", description=__doc__.split("\n")[0]
    )
    p.add_argument("--photo", type=Path, required=True)
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the contact sheet (.jpg)")
    p.add_argument("--loss-net", default=LOSS_NETS[0], choices=LOSS_NETS)
    p.add_argument("--loss-weights", help="a state dict file instead of the default weights")
    p.add_argument("--size", type=int, default=384, help="the photo's longer side, px")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--content-layer", help="comma-separated values sweep (default: the net's)")
    p.add_argument("--content-weight", help="e.g. 0.3,1,3")
    p.add_argument("--style-weight")
    p.add_argument("--style-size", default="512", help="the painting's longer side, px")
    p.add_argument(
        "--style-layers", help="name:weight,name:weight as in training; ';' separates sweep values"
    )
    p.add_argument(
        "--style-statistic", help=f"{' or '.join(losses.STYLE_STATISTICS)}; ',' sweeps both"
    )
    p.add_argument("--columns", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)
    try:
        net = build_loss_net(args.loss_net, args.loss_weights)
        d = DEFAULTS[args.loss_net]
        default_layers = ",".join(f"{k}:{v:g}" for k, v in d.style_layers.items())
        sweeps = itertools.product(
            (args.content_layer or d.content_layer).split(","),
            [float(v) for v in (args.content_weight or str(d.content_weight)).split(",")],
            [float(v) for v in (args.style_weight or str(d.style_weight)).split(",")],
            [int(v) for v in args.style_size.split(",")],
            (args.style_layers or default_layers).split(";"),
            (args.style_statistic or d.style_statistic).split(","),
        )
        settings = [Setting(*combo) for combo in sweeps]
        for s in settings:
            if s.style_statistic not in losses.STYLE_STATISTICS:
                raise UsageError(
                    f"unknown --style-statistic {s.style_statistic!r}; "
                    f"choose from {', '.join(losses.STYLE_STATISTICS)}"
                )
            unknown = ({s.content_layer} | set(parse_style_layers(s.style_layers))) - set(
                net.layer_names
            )
            if unknown:
                raise UsageError(f"unknown layers {sorted(unknown)}; choose from {net.layer_names}")
        photo = data.to_tensor(
            ImageOps.contain(
                data.load_rgb(args.photo), (args.size, args.size), Image.Resampling.LANCZOS
            )
        )[None]  # (1, 3, H, W)
        painting = data.load_style_image(args.style, args.size)
        height = photo.shape[-2]
        tiles = [tile(photo, "photo", height), tile(painting, "painting", height)]
        for s in settings:
            t0 = time.perf_counter()
            result = optimize(net, photo, args.style, s, args.steps)
            log.info("%s: %.1f s", label(s), time.perf_counter() - t0)
            tiles.append(tile(result, label(s, sep="\n"), height))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(tiles, args.columns).save(args.out, quality=85)
    log.info("wrote %s (%d settings)", args.out, len(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
