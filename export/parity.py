"""Parity: the ONNX model under ONNX Runtime (CPU) must match the PyTorch network.

Real photos at several sizes (odd ones included) and a batch of 2 go through both; the uint8
outputs may differ by at most `tolerance` on the 0..255 scale (float rounding only).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image, ImageOps

from stylefn.contract import STYLE_WEIGHTS_INPUT

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
CASES = ((1, 97, 131), (1, 256, 256), (1, 384, 512), (2, 160, 224))  # (N, H, W)
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class ParityError(Exception):
    """ONNX Runtime and PyTorch disagree beyond the tolerance."""


def default_photo_dir() -> Path:
    return Path(os.environ.get("STYLE_EVAL_DIR", ROOT.parent / "shared" / "data" / "eval"))


def _synthetic_photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([xx, yy, 1 - xx * yy], -1) * 200 + rng.normal(25, 8, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def parity_batches(photo_dir: Path | None = None) -> list[np.ndarray]:
    """One uint8 (N, H, W, 3) batch per case, center-cropped from real photos when available."""
    photo_dir = photo_dir or default_photo_dir()
    paths = (
        sorted(p for p in photo_dir.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS)
        if photo_dir.is_dir()
        else []
    )
    if paths:
        photos = [Image.open(p).convert("RGB") for p in paths[:5]]
    else:
        log.warning("no photos in %s for the parity check; using generated images", photo_dir)
        photos = [_synthetic_photo(seed) for seed in range(5)]
    batches, k = [], 0
    for n, h, w in CASES:
        crops = []
        for _ in range(n):
            crops.append(np.asarray(ImageOps.fit(photos[k % len(photos)], (w, h))))
            k += 1
        batches.append(np.stack(crops))
    return batches


def parity_mixes(num_styles: int) -> list[np.ndarray | None]:
    """The style weights the parity batches cycle through: none for a single-style graph; else
    the first style, the last, a 60/40 mix of the two, and one from the middle."""
    if num_styles == 1:
        return [None]
    eye = np.eye(num_styles, dtype=np.float32)
    return [eye[0], eye[-1], 0.6 * eye[0] + 0.4 * eye[-1], eye[num_styles // 2]]


def check_parity(
    net: torch.nn.Module, onnx_path: Path, *, photo_dir: Path | None = None, tolerance: int = 1
) -> list[dict]:
    """Compare PyTorch (fp32) with ONNX Runtime; raises ParityError past `tolerance`."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    # A tile graph (export/wrapper.py TileStylizer) with "use no given statistics" must be the
    # plain network too.
    extra = {
        i.name: np.zeros(i.shape, np.float32)
        for i in session.get_inputs()[1:]
        if i.shape is not None and i.name != STYLE_WEIGHTS_INPUT
    }
    mixes = parity_mixes(getattr(getattr(net, "config", None), "num_styles", 1))

    def reference(batch: torch.Tensor, mix: np.ndarray | None) -> torch.Tensor:
        # The contract written out against the plain network, not through the export wrapper,
        # so the wrapper's own rewrites (export/wrapper.py SharedNorm) are under test too.
        style = None if mix is None else torch.from_numpy(mix)
        y = net(batch.permute(0, 3, 1, 2).float(), style).round().clamp(0, 255)
        return y.to(torch.uint8).permute(0, 2, 3, 1)

    rows = []
    worst = 0
    for i, batch in enumerate(parity_batches(photo_dir)):
        mix = mixes[i % len(mixes)]
        feeds = {input_name: batch, **extra}
        if mix is not None:
            feeds[STYLE_WEIGHTS_INPUT] = mix
        t0 = time.perf_counter()
        with torch.no_grad():
            expected = reference(torch.from_numpy(batch), mix).numpy()
        t1 = time.perf_counter()
        got = session.run(None, feeds)[0]
        t2 = time.perf_counter()
        if got.shape != expected.shape or got.dtype != np.uint8:
            raise ParityError(
                f"ONNX output {got.shape} {got.dtype} for input {batch.shape}; "
                f"expected {expected.shape} uint8"
            )
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        worst = max(worst, int(diff.max()))
        rows.append(
            {
                "shape": "x".join(map(str, batch.shape)),
                "mix": "-"
                if mix is None
                else ",".join(f"{w:g}" for w in mix if w) + f" of {len(mix)}",
                "max_diff": int(diff.max()),
                "mean_diff": float(diff.mean()),
                "torch_ms": (t1 - t0) * 1e3,
                "onnx_ms": (t2 - t1) * 1e3,
            }
        )
    if worst > tolerance:
        raise ParityError(
            f"parity failed: max pixel difference {worst} > {tolerance}\n{format_report(rows)}"
        )
    return rows


def format_report(rows: list[dict]) -> str:
    lines = [
        f"{'input NxHxWxC':<16} {'style mix':<12} {'max diff':>8} {'mean diff':>10} "
        f"{'torch ms':>9} {'onnx ms':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['shape']:<16} {r.get('mix', '-'):<12} {r['max_diff']:>8} {r['mean_diff']:>10.4f} "
            f"{r['torch_ms']:>9.1f} {r['onnx_ms']:>8.1f}"
        )
    return "\n".join(lines)
