"""Everything a training run needs, built once from its TrainConfig: the styles, the network,
its optimizer and loss, the photos, and where it resumes from."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

from training import checkpoint, data, losses, styles
from training.errors import UsageError
from training.hardware import autocast_dtype, pick_device
from training.loss_nets import DEFAULTS, build_loss_net
from training.model import PRESETS, ModelConfig, TransformerNet
from training.trunk import freeze_all_but_norms, load_trunk, start_from_trunk

if TYPE_CHECKING:
    from training.train import TrainConfig

log = logging.getLogger("training")


@dataclass
class Run:
    cfg: TrainConfig
    styles: list[styles.StyleEntry]
    model: TransformerNet  # what is saved
    net: nn.Module  # what is trained: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    criterion: losses.MultiStyleLoss
    teacher: TransformerNet | None
    loader: DataLoader
    sampler: Sampler
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: float32
    step: int  # steps done (the checkpoint's when resuming)
    total_steps: int
    out: Path
    meta: dict  # what every checkpoint records beside the weights
    sample_photos: torch.Tensor  # (4, 3, S, S)
    rank: int
    world: int
    resumed: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resume_point(cfg: TrainConfig, out: Path) -> dict | None:
    """The checkpoint to continue from: --resume, else OUT/last.pt when a run left one."""
    if cfg.resume:
        return checkpoint.load(cfg.resume)
    last = out / "last.pt"
    return checkpoint.load(last) if last.is_file() else None


def check_same_styles(ckpt: dict, entries: list[styles.StyleEntry], where: str) -> None:
    had = [(s["name"], s["sha256"]) for s in ckpt["styles"]]
    asked = [(s.name, s.sha256) for s in entries]
    if had != asked:
        raise UsageError(
            f"{where} was trained on the styles {[n for n, _ in had]}, not on these paintings "
            f"{[n for n, _ in asked]} (names and image hashes, in order); pass the same --style "
            "list, or another --out to start a new run"
        )


def build_criterion(
    cfg: TrainConfig, entries: list[styles.StyleEntry], device: torch.device
) -> losses.MultiStyleLoss:
    loss_net = build_loss_net(cfg.loss_net, cfg.loss_weights).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    # torch's type stubs omit Module.to(memory_format=...), which it accepts
    loss_net = loss_net.to(memory_format=memory_format)  # type: ignore[call-overload]
    unknown = {cfg.content_layer} | {
        k for e in entries for k in styles.parse_style_layers(e.style_layers)
    }
    unknown -= set(loss_net.layer_names)
    if unknown:
        raise UsageError(
            f"unknown loss layers {sorted(unknown, key=str)}; choose from {loss_net.layer_names}"
        )
    specs = [
        losses.StyleSpec(
            data.load_style_image(e.path, e.style_size or None, e.trim).to(device),
            styles.parse_style_layers(e.style_layers),
            e.style_weight,
            e.content_weight,
        )
        for e in entries
    ]
    assert cfg.content_layer and cfg.style_statistic  # resolved in setup
    return losses.MultiStyleLoss(
        loss_net,
        specs,
        content_layer=cfg.content_layer,
        tv_weight=cfg.tv_weight,
        jitter=cfg.loss_jitter,
        margin=cfg.loss_margin,
        style_statistic=cfg.style_statistic,
    )


def setup(cfg: TrainConfig) -> Run:
    """Build the run; in a torchrun job, also join the process group."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.steps is not None and cfg.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    if distributed and cfg.time_budget:
        raise UsageError("--time-budget is for single-process runs (ranks would stop apart)")
    if cfg.arch not in PRESETS:
        raise UsageError(f"unknown --arch {cfg.arch!r}; choose from {list(PRESETS)}")
    device = pick_device(cfg.device, local_rank)
    dtype = autocast_dtype(cfg.precision, device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    world = dist.get_world_size() if distributed else 1
    if rank != 0:
        logging.getLogger().setLevel(logging.ERROR)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest conv kernels once

    paths = data.find_images(cfg.data)
    defaults = DEFAULTS.get(cfg.loss_net)
    if defaults is None:
        raise UsageError(f"unknown --loss-net {cfg.loss_net!r}; choose one of {list(DEFAULTS)}")
    entries = styles.resolve(
        cfg.style,
        defaults,
        style_size=cfg.style_size,
        style_layers=cfg.style_layers,
        style_weight=cfg.style_weight,
        content_weight=cfg.content_weight,
        style_scale=cfg.style_scale,
    )
    cfg.content_layer = cfg.content_layer or defaults.content_layer
    cfg.style_statistic = cfg.style_statistic or defaults.style_statistic
    if cfg.style_statistic not in losses.STYLE_STATISTICS:
        raise UsageError(
            f"unknown --style-statistic {cfg.style_statistic!r}; "
            f"choose one of {', '.join(losses.STYLE_STATISTICS)}"
        )
    criterion = build_criterion(cfg, entries, device)

    out = Path(cfg.out)
    ckpt = resume_point(cfg, out)
    preset = PRESETS[cfg.arch]
    model_config = ModelConfig(
        arch=cfg.arch,
        base_channels=cfg.base_channels or preset.base_channels,
        num_residual_blocks=cfg.residual_blocks or preset.num_residual_blocks,
        num_styles=len(entries),
    )
    if ckpt is not None:
        check_same_styles(ckpt, entries, cfg.resume or str(out / "last.pt"))
        model_config = ModelConfig(**ckpt["model_config"])
    trunk = load_trunk(cfg.trunk) if cfg.trunk else None
    if trunk is not None and ckpt is None:
        model_config = dataclasses.replace(
            ModelConfig(**trunk["model_config"]), num_styles=len(entries)
        )
    torch.manual_seed(cfg.seed + rank)  # the same initial network whatever the loss net drew
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = TransformerNet(model_config).to(device, memory_format=memory_format)  # type: ignore[call-overload]
    if trunk is not None:
        if ckpt is None:
            start_from_trunk(model, trunk, [e.name for e in entries])
        freeze_all_but_norms(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    step = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:  # weights-only checkpoints (export.unpack) restart Adam
            optimizer.load_state_dict(ckpt["optimizer"])
        step = ckpt["step"]
    teacher = None
    distilled_from = None
    if cfg.teacher:
        teacher, teacher_meta = checkpoint.load_model(cfg.teacher)
        check_same_styles(teacher_meta, entries, f"--teacher {cfg.teacher}")
        teacher = teacher.to(device, memory_format=memory_format).requires_grad_(False)  # type: ignore[call-overload]
        distilled_from = {
            "arch": teacher_meta["model_config"]["arch"],
            "step": teacher_meta["step"],
            "loss_net": teacher_meta["loss_net"],
        }

    dataset = data.PhotoDataset(paths, cfg.image_size)
    if len(dataset) < cfg.batch_size * world:
        raise UsageError(
            f"--data has {len(dataset)} images, fewer than one batch ({cfg.batch_size} x {world}); "
            "add photos or lower --batch-size"
        )
    sampler: Sampler = (
        DistributedSampler(dataset, seed=cfg.seed)
        if distributed
        else RandomSampler(dataset, generator=torch.Generator().manual_seed(cfg.seed + step))
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
    meta = {
        "model_config": model_config.to_dict(),
        "train_config": dataclasses.asdict(cfg) | {"precision": "bf16" if dtype else "fp32"},
        "styles": [e.to_dict() for e in entries],
        "loss_net": criterion.loss_net.name,
    } | ({"distilled_from": distilled_from} if distilled_from else {})
    if trunk is not None:
        meta["trunk"] = {
            "styles": [s["name"] for s in trunk["styles"]],
            "step": trunk["step"],
            "model_config": trunk["model_config"],
        }
    return Run(
        cfg=cfg,
        styles=entries,
        model=model,
        net=DistributedDataParallel(model) if distributed else model,
        optimizer=optimizer,
        criterion=criterion,
        teacher=teacher,
        loader=loader,
        sampler=sampler,
        device=device,
        autocast_dtype=dtype,
        step=step,
        total_steps=40000 if total_steps is None else total_steps,
        out=out,
        meta=meta,
        sample_photos=data.center_crops(paths[:: max(1, len(paths) // 4)][:4], cfg.image_size),
        rank=rank,
        world=world,
        resumed=ckpt is not None,
    )
