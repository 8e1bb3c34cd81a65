"""What a decoder for arbitrary styles could at best paint, before any decoder is trained.

    python -m training.arbitrary_probe --photo ../shared/data/eval/kodim23.png \
        --painting A.jpg --painting B.jpg --out docs/arbitrary_probe.jpg \
        --levels s16,s8 --transforms adain,wct --soften 0,1

Universal style transfer (WCT, Li et al. 2017; AdaIN, Huang & Belongie 2017) moves the photo's
encoder features to the painting's statistics and decodes them with a network trained only to
reconstruct photos. Its best case is a perfect decoder: this tool stands in for one by
optimising the pixels themselves until the frozen EfficientNet-Lite0 gives the transformed
features (starting from the photo, as a decoder would reproduce it). Coarse to fine: each level
in `--levels` is transformed and inverted in turn, starting from the previous level's result.

`--soften T`: the transform works on softened features, log(1 + f / T) of the ReLU6 taps,
after Wang, Li and Vasconcelos (CVPR 2021), who find non-VGG activations too peaky to carry a
style (0: none). Every combination is one labelled tile of a contact sheet, per painting a row.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from tqdm import tqdm

from training import data
from training.efficientnet import EfficientNetLite0, build_efficientnet_lite0
from training.report import to_uint8_hwc

EPS = 1e-5


def soften(f: torch.Tensor, t: float) -> torch.Tensor:
    return torch.log1p(f / t) if t > 0 else f


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """(C, N) features with the style's channel means and deviations."""
    cm, cs = content.mean(1, keepdim=True), content.std(1, keepdim=True) + EPS
    sm, ss = style.mean(1, keepdim=True), style.std(1, keepdim=True) + EPS
    return (content - cm) / cs * ss + sm


def wct(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """(C, N) features whitened, then coloured with the style's covariance (Li et al. 2017)."""

    def moments(
        f: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        mean = f.mean(1, keepdim=True)
        centred = f - mean
        cov = centred @ centred.T / (f.shape[1] - 1) + EPS * torch.eye(f.shape[0])
        values, vectors = torch.linalg.eigh(cov.double())
        return mean, centred, (vectors.float(), values.clamp_min(EPS).float())

    _, centred, (cv, ce) = moments(content)
    sm, _, (sv, se) = moments(style)
    white = cv @ torch.diag(ce.rsqrt()) @ cv.T @ centred
    return sv @ torch.diag(se.sqrt()) @ sv.T @ white + sm


TRANSFORMS = {"adain": adain, "wct": wct}


def features(net: EfficientNetLite0, x: torch.Tensor, level: str, t: float) -> torch.Tensor:
    """(C, H*W) softened tap `level` of one image x (1, 3, H, W)."""
    f = net(x)[level][0]
    return soften(f, t).flatten(1)


def invert(
    net: EfficientNetLite0,
    start: torch.Tensor,
    target: torch.Tensor,
    level: str,
    t: float,
    steps: int,
) -> torch.Tensor:
    """Pixels whose softened `level` features match `target`, from `start` (1, 3, H, W)."""
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=4.0)
    scale = target.pow(2).mean()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (features(net, x, level, t) - target).pow(2).mean() / scale
        tv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()
        (loss + 1e-4 * tv).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 255)
    return x.detach()


def stylize(
    net: EfficientNetLite0,
    photo: torch.Tensor,
    painting: torch.Tensor,
    levels: list[str],
    transform: str,
    t: float,
    steps: int,
) -> torch.Tensor:
    x = photo
    for level in levels:
        with torch.no_grad():
            target = TRANSFORMS[transform](
                features(net, x, level, t), features(net, painting, level, t)
            )
        x = invert(net, x, target, level, t, steps)
    return x


def label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 16), "white")
    out.paste(img, (0, 16))
    ImageDraw.Draw(out).text((3, 2), text, fill="black")
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photo", required=True)
    p.add_argument("--painting", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--levels", default="s16,s8", help="coarse to fine, e.g. s16,s8 or s8")
    p.add_argument("--transforms", default="adain,wct")
    p.add_argument("--soften", default="0,1", help="temperatures, 0: none")
    p.add_argument("--steps", type=int, default=150)
    args = p.parse_args()
    torch.manual_seed(0)
    net = build_efficientnet_lite0().eval().requires_grad_(False)

    def load(path: str) -> torch.Tensor:  # (1, 3, H, W), the shorter side args.size
        return data.to_tensor(data.resize_shorter(data.load_rgb(Path(path)), args.size))[None]

    photo = load(args.photo)
    settings = list(
        itertools.product(args.transforms.split(","), map(float, args.soften.split(",")))
    )
    rows = []
    bar = tqdm(total=len(args.painting) * len(settings), desc="probe", unit="tile")
    for path in args.painting:
        painting = load(path)
        tiles = [label(Image.fromarray(to_uint8_hwc(painting)[0]).resize(
            (photo.shape[3], photo.shape[2])), Path(path).stem[:40])]  # fmt: skip
        for transform, t in settings:
            t0 = time.perf_counter()
            x = stylize(net, photo, painting, args.levels.split(","), transform, t, args.steps)
            name = f"{transform}, soften {t:g}, {args.levels}, {time.perf_counter() - t0:.0f} s"
            tiles.append(label(Image.fromarray(to_uint8_hwc(x)[0]), name))
            bar.update(1)
        rows.append(tiles)
    w, h = rows[0][0].size
    sheet = Image.new("RGB", (w * len(rows[0]), h * len(rows)), "white")
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            sheet.paste(tile, (c * w, r * h))
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
