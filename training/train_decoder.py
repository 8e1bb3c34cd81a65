"""Train a decoder of the frozen EfficientNet-Lite0's features (training/decoders.py) to
reproduce photos: the reconstruction half of universal style transfer (issue #31).

    python -m training.train_decoder --level s16 --data ../shared/data/photos \
        --out runs/decoder_s16 --steps 20000

The loss is the pixels' mean absolute error plus the Lite0 features of the reconstruction
against the photo's at every tap up to the decoder's level, each divided by its target's energy
(as the style networks' content loss). A rerun of the same command resumes from OUT/last.pt;
the checkpoint records the level, width, encoder and steps, so export needs nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from training import data
from training.decoders import TAPS, Decoder, DecoderConfig
from training.efficientnet import LAYER_NAMES, NAME, EfficientNetLite0, build_efficientnet_lite0
from training.errors import UsageError
from training.hardware import autocast_dtype, pick_device

log = logging.getLogger("training")


@dataclass(frozen=True)
class DecoderTrainConfig:
    level: str
    data: str
    out: str
    steps: int = 20_000
    batch_size: int = 4
    image_size: int = 128
    width: int = 16
    max_width: int = 128
    lr: float = 1e-3
    feature_weight: float = 1.0
    precision: str = "auto"
    workers: int = 1
    save_every: int = 200
    seed: int = 0


def encode(encoder: EfficientNetLite0, x: torch.Tensor, level: str) -> dict[str, torch.Tensor]:
    """Every tap from s2 up to `level` (the deepest is what the decoder reads)."""
    taps = encoder(x)
    keep = LAYER_NAMES[1 : LAYER_NAMES.index(level) + 1]
    return {k: taps[k] for k in keep}


def reconstruction_loss(
    encoder: EfficientNetLite0,
    y: torch.Tensor,  # (N, 3, H, W) the reconstruction
    x: torch.Tensor,  # the photo
    targets: dict[str, torch.Tensor],  # its taps
    feature_weight: float,
) -> dict[str, torch.Tensor]:
    pixel = (y - x).abs().mean() / 255.0
    got = encode(encoder, y, next(reversed(targets)))
    feature = sum(
        (got[k].float() - t.float()).pow(2).mean() / t.float().pow(2).mean()
        for k, t in targets.items()
    )
    feature = torch.as_tensor(feature)
    return {"pixel": pixel, "feature": feature, "total": pixel + feature_weight * feature}


def train(cfg: DecoderTrainConfig) -> Path:
    """Train (or resume) and return OUT/last.pt."""
    if cfg.level not in TAPS:
        raise UsageError(f"--level {cfg.level!r}: choose one of {', '.join(TAPS)}")
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device("auto", 0)
    dtype = autocast_dtype(cfg.precision, device)
    encoder = build_efficientnet_lite0().to(device).eval().requires_grad_(False)
    decoder = Decoder(DecoderConfig(cfg.level, cfg.width, cfg.max_width)).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    step, last = 0, out / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        decoder.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        log.info("resuming %s at step %d", last, step)
    photos = data.PhotoDataset(data.find_images(cfg.data), cfg.image_size)
    if len(photos) == 0:
        raise UsageError(f"--data {cfg.data}: no readable photos")
    loader = DataLoader(
        photos, cfg.batch_size, shuffle=True, drop_last=len(photos) >= cfg.batch_size,
        num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
    )  # fmt: skip
    log.info("decoder %s on %d photos, %s, %s", cfg.level, len(photos), device, dtype or "fp32")

    def save() -> None:
        state = {
            "model": decoder.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "decoder_config": asdict(decoder.cfg), "encoder": NAME, "train_config": asdict(cfg),
        }  # fmt: skip
        torch.save(state, out / "last.tmp")
        (out / "last.tmp").replace(last)

    bar = tqdm(total=cfg.steps, initial=step, desc=f"decoder {cfg.level}", unit="step")
    with (
        bar,
        open(out / "log.jsonl", "a", buffering=1) as log_file,
    ):  # line by line: a kill keeps it
        while step < cfg.steps:
            for x in loader:
                x = x.to(device)  # (N, 3, S, S)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=bool(dtype)):
                    with torch.no_grad():
                        targets = encode(encoder, x, cfg.level)
                    y = decoder(targets[cfg.level], x.shape[-2:])
                    terms = reconstruction_loss(encoder, y.float(), x, targets, cfg.feature_weight)
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                step += 1
                bar.update(1)
                record = {
                    "step": step,
                    "time": time.time(),
                    **{k: v.item() for k, v in terms.items()},
                }
                log_file.write(json.dumps(record) + "\n")
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in terms})
                if step % cfg.save_every == 0 or step == cfg.steps:
                    save()
                if step >= cfg.steps:
                    break
    save()
    return last


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, default in DecoderTrainConfig.__dataclass_fields__.items():
        value = default.default
        required = name in ("level", "data", "out")
        kind = type(value) if not required else str
        p.add_argument("--" + name.replace("_", "-"), type=kind, required=required,
                       default=None if required else value)  # fmt: skip
    try:
        train(DecoderTrainConfig(**vars(p.parse_args(argv))))
    except UsageError as e:
        p.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
