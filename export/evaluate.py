"""Score exported models on held-out photos with the perceptual loss they were trained on.

    python -m export.evaluate --models function/models --eval ../shared/data/eval

Each ONNX model stylizes every photo (shorter side --size, centre crop); the stylized image is
scored against its photo with the training objective of the model's loss network (content +
style, with --content-weight and --style-weight as in training), so the `fast` and `johnson`
networks of one style can be compared on photos neither saw. Prints a table per style and the
fast network's gap to johnson's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from export.onnx_export import style_models
from training import data, losses
from training.loss_nets import DEFAULTS, build_loss_net, kind_of


def stylize(session: ort.InferenceSession, photos: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) float 0..255 -> the same, through the uint8 NHWC model."""
    images = photos.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()
    out = np.concatenate([session.run(None, {"image": im[None]})[0] for im in images])
    return torch.from_numpy(out).permute(0, 3, 1, 2).float()


def score(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    photos = data.center_crops(data.find_images(args.eval), args.size)  # (N, 3, S, S)
    results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    criteria: dict[tuple[str, str], losses.PerceptualLoss] = {}
    for path in style_models(args.models):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        name, loss_net = meta["name"], meta["loss_net"]
        key = (name, loss_net)
        if key not in criteria:
            kind = kind_of(loss_net)
            net = build_loss_net(kind, args.loss_weights if kind == "vgg16" else None)
            criteria[key] = losses.PerceptualLoss(
                net,
                data.load_style_image(args.styles_dir / f"{name}.jpg", args.style_size),
                content_layer=DEFAULTS[kind].content_layer,
                style_layers=DEFAULTS[kind].style_layers,
                content_weight=args.content_weight,
                style_weight=args.style_weight,
            )
        totals: dict[str, float] = defaultdict(float)
        for batch in photos.split(4):  # the loss net's maps of 24 photos at once take ~4 GB
            with torch.no_grad():
                terms = criteria[key](stylize(session, batch), batch)
            for k, v in terms.items():
                totals[k] += v.item() * len(batch) / len(photos)
        results[name][meta.get("arch", "johnson")] = dict(totals)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("--models", type=Path, default=Path("function/models"))
    p.add_argument("--eval", type=Path, default=Path("../shared/data/eval"))
    p.add_argument("--styles-dir", type=Path, default=Path("../shared/data/styles"))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--content-weight", type=float, default=1.0)
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--loss-weights", help="VGG16 weights, to score models trained with vgg16")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = score(args)
    print("| style | arch | content | style | total | fast vs johnson |")
    print("|---|---|---:|---:|---:|---:|")
    for name, archs in results.items():
        base = archs.get("johnson", {}).get("total_loss")
        for arch, t in sorted(archs.items(), key=lambda kv: kv[0] != "johnson"):
            gap = (
                f"{100 * (t['total_loss'] / base - 1):+.1f} %" if base and arch != "johnson" else ""
            )
            print(
                f"| {name} | {arch} | {t['content_loss']:.3f} | {t['style_loss']:.3f} | "
                f"{t['total_loss']:.3f} | {gap} |"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
