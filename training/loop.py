"""The training loop: the loss of one step, and the steps with their progress bar, log,
checkpoints and samples. training.setup builds what it runs; training.train is the CLI."""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from training import checkpoint
from training.errors import UsageError
from training.model import one_hot
from training.report import save_loss_plot, save_samples
from training.setup import Run, setup
from training.stability import stability_loss

if TYPE_CHECKING:
    from collections.abc import Iterator

    from training.train import TrainConfig

log = logging.getLogger("training")
EARLY_SAMPLES = (10, 50, 200)  # a first look within a minute or two, before --sample-every


def step_loss(
    run: Run, x: torch.Tensor, style_index: torch.Tensor, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one batch, x (N, 3, S, S), each image painted in the style
    style_index (N,) names; `total_loss` is what is minimised. `generator` draws the motions
    of the stability term, when it is on."""
    mix = one_hot(style_index, len(run.styles))  # (N, S)
    with torch.autocast(
        run.device.type, dtype=run.autocast_dtype or torch.float32, enabled=bool(run.autocast_dtype)
    ):
        y = run.net(x, mix)
        if run.step < run.cfg.identity_warmup_steps:
            loss = F.mse_loss(y.float(), x) / 255.0**2
            return {"reconstruction_loss": loss, "total_loss": loss}
        if run.teacher is not None:
            with torch.no_grad():
                target = run.teacher(x, mix)
            loss = F.mse_loss(y.float(), target.float()) / 255.0**2
            return {"distill_loss": loss, "total_loss": loss}
        terms = run.criterion(y, x, style_index)
        if run.cfg.stability_weight:
            draw = generator or torch.Generator().manual_seed(run.step)
            stable = run.cfg.stability_weight * stability_loss(run.net, x, y, mix, draw)
            terms |= {"stability_loss": stable, "total_loss": terms["total_loss"] + stable}
        return terms


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cloud job's stop, `kill`) saves and exits like Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_log(run: Run) -> Path:
    """log.jsonl, cut back to the checkpoint's step when resuming (the steps after it are
    redone), and begun anew otherwise."""
    path = run.out / "log.jsonl"
    kept = []
    if run.resumed and path.is_file():
        kept = [
            line
            for line in path.read_text().splitlines()
            if line and json.loads(line).get("step", 0) <= run.step
        ]
    elif path.is_file():
        log.warning("%s has no last.pt: starting at step 0 and replacing its log.jsonl", run.out)
    path.write_text("".join(line + "\n" for line in kept))
    return path


class Logger:
    """log.jsonl records and the progress bar's losses, every cfg.log_every steps."""

    def __init__(self, run: Run, path: Path | None):
        self.run, self.path = run, path
        self.last_time, self.last_step = time.perf_counter(), run.step

    def __call__(self, terms: dict[str, torch.Tensor], bar: tqdm) -> None:
        run = self.run
        # .item() syncs the GPU, so losses are read only every log_every steps.
        record: dict[str, float | str] = {"step": run.step}
        record |= {k: v.item() for k, v in terms.items()}
        if "reconstruction_loss" in terms:
            record["phase"] = "identity_warmup"  # reconstruction only, no perceptual terms
        total = terms["total_loss"].item()
        if not math.isfinite(total):
            raise UsageError(
                f"loss became {total} at step {run.step}; lower --lr or the loss weights"
            )
        now = time.perf_counter()
        record["images_per_s"] = (
            (run.step - self.last_step) * run.cfg.batch_size * run.world / (now - self.last_time)
        )
        self.last_time, self.last_step = now, run.step
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        losses = {
            k.removesuffix("_loss"): f"{v:.3g}" for k, v in record.items() if k.endswith("_loss")
        }
        bar.set_postfix(losses | {"img_s": f"{record['images_per_s']:.1f}"})


def save(run: Run, name: str) -> Path:
    path = run.out / name
    checkpoint.save(path, model=run.model, optimizer=run.optimizer, step=run.step, **run.meta)
    return path


def save_sample(run: Run) -> None:
    save_samples(
        run.model, run.sample_photos, run.out / "samples" / f"step_{run.step}.jpg", len(run.styles)
    )


def progress(run: Run, phase: str, end: int) -> tqdm:
    """A bar per phase, so the ETA of the perceptual steps is not the warm-up's (a warm-up
    step costs a fraction of one)."""
    return tqdm(
        total=end,
        initial=run.step,
        desc=phase,
        disable=not run.is_main or run.step >= end,
        unit="step",
        dynamic_ncols=True,
    )


def batches(run: Run) -> Iterator[torch.Tensor]:
    """Batches, epoch after epoch, for as long as the loop asks."""
    epoch = run.step // max(1, len(run.loader))
    while True:
        if isinstance(run.sampler, DistributedSampler):
            run.sampler.set_epoch(epoch)
        yield from run.loader
        epoch += 1


def loop(run: Run) -> None:
    """Train from run.step to run.total_steps (or --time-budget); returns normally when done,
    raises KeyboardInterrupt when stopped."""
    cfg = run.cfg
    logger = Logger(run, start_log(run) if run.is_main else None)
    deadline = time.monotonic() + cfg.time_budget if cfg.time_budget else math.inf
    generator = torch.Generator().manual_seed(cfg.seed + run.rank * 100_003 + run.step)
    warmup_end = min(cfg.identity_warmup_steps, run.total_steps)
    bars = {"warm-up": warmup_end, "train": run.total_steps}
    source = batches(run)
    for phase, end in bars.items():
        with progress(run, phase, end) as bar:
            while run.step < end:
                if time.monotonic() > deadline:
                    log.warning("--time-budget %gs reached at step %d", cfg.time_budget, run.step)
                    run.total_steps = run.step
                    return
                x = next(source).to(run.device, non_blocking=True)  # (N, 3, S, S)
                style_index = torch.randint(len(run.styles), (len(x),), generator=generator)
                terms = step_loss(run, x, style_index.to(run.device), generator)
                run.optimizer.zero_grad(set_to_none=True)
                terms["total_loss"].backward()
                run.optimizer.step()
                run.step += 1
                bar.update(1)
                if run.step % cfg.log_every == 0 or run.step == run.total_steps:
                    logger(terms, bar)
                if not run.is_main:
                    continue
                if run.step % cfg.checkpoint_every == 0:
                    save(run, f"step_{run.step}.pt")
                if run.step % cfg.save_every == 0 or run.step % cfg.checkpoint_every == 0:
                    save(run, "last.pt")
                if run.step % cfg.sample_every == 0 or run.step in EARLY_SAMPLES:
                    save_sample(run)


def train(cfg: TrainConfig) -> Path:
    """Run training; returns the path of the final checkpoint (last.pt)."""
    run = setup(cfg)
    if run.is_main:
        run.out.mkdir(parents=True, exist_ok=True)
        names = [s.name for s in run.styles]
        log.info(
            "%s %s on %d photos, to step %d, batch %d x %d, %s, %s, loss net %s",
            f"resuming at step {run.step}:" if run.resumed else "training",
            names[0] if len(names) == 1 else f"{len(names)} styles ({', '.join(names)})",
            len(run.loader.dataset),  # type: ignore[arg-type]
            run.total_steps,
            cfg.batch_size,
            run.world,
            run.device,
            "bf16 autocast" if run.autocast_dtype else "float32",
            run.criterion.loss_net.name,
        )
    # Denormal floats (tiny Adam moments and activations of a trained net) make x86 CPU math
    # 10-20x slower: a fast-arch step took 4.6 s instead of 0.3 s. Flushing them to zero changes
    # nothing that matters for training. The flag is process-wide, so it is undone afterwards.
    torch.set_flush_denormal(True)
    try:
        with sigterm_as_interrupt():
            loop(run)
    except KeyboardInterrupt:
        if run.is_main:
            path = save(run, "last.pt")
            log.warning("stopped at step %d; saved %s", run.step, path)
            print(f"resume with:\n  {cfg.command}", flush=True)
        raise
    finally:
        torch.set_flush_denormal(False)

    final = run.out / "last.pt"
    if run.is_main:
        save(run, "last.pt")
        save_sample(run)
        save_loss_plot(run.out / "log.jsonl", run.out / "loss.png")
        log.info("done: %s (%s)", final, datetime.now(UTC).isoformat(timespec="seconds"))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return final
