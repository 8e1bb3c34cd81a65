"""ONNX Runtime sessions and the style registry. Pure numpy in and out; no HTTP here.

One session per style, created once per instance and shared by all request threads (ONNX
Runtime's `run` is thread-safe). A semaphore bounds how many runs execute at once, so a burst
queues instead of oversubscribing the CPU cores or the GPU's memory.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from errors import ApiError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERRED_DEFAULT = "starry_night"


class GpuRequiredError(RuntimeError):
    """REQUIRE_GPU=1 but the CUDA provider could not be used."""


@dataclass(frozen=True)
class Style:
    name: str
    session: ort.InferenceSession
    metadata: dict[str, str]

    def describe(self) -> dict:
        """Public metadata for /styles (the file path never leaves the server)."""
        m = self.metadata
        return {
            "name": self.name,
            "title": m.get("title", self.name),
            "artist": m.get("artist", "unknown"),
            "loss_net": m.get("loss_net", "unknown"),
            "training_steps": int(m["training_steps"]) if m.get("training_steps") else None,
            "image_size": int(m["image_size"]) if m.get("image_size") else None,
            "arch": m.get("arch", "johnson"),
            "precision": m.get("precision", "fp32"),
        }


def available_cpus() -> int:
    """CPUs this process may really use: affinity, narrowed by a cgroup v2 quota (containers)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def cuda_providers() -> list:
    return [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]


def check_setup(model_dir: str | Path, require_gpu: bool) -> list[Path]:
    """The model files, after the checks that need no session (so they are safe to run before
    a fork): some models exist, and the build has CUDA when a GPU is required."""
    paths = sorted(Path(model_dir).glob("*.onnx"))
    if not paths:
        raise RuntimeError(f"no *.onnx style models in {model_dir}; set MODEL_DIR")
    if require_gpu and CUDA not in ort.get_available_providers():
        raise GpuRequiredError("REQUIRE_GPU=1 but this onnxruntime build has no CUDA provider")
    return paths


class StyleRegistry:
    """Every `*.onnx` in `model_dir`, keyed by the style name in its metadata."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        default_style: str | None = None,
        require_gpu: bool = False,
        max_concurrent_runs: int | None = None,
        queue_timeout_s: float = 30.0,
        max_queued_requests: int = 16,
        threads: int | None = None,
    ):
        paths = check_setup(model_dir, require_gpu)
        self.provider = CPU
        providers: list = [CPU]
        if CUDA in ort.get_available_providers():
            if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from pip wheels, onnxruntime >= 1.21
                ort.preload_dlls()
            providers = cuda_providers()

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cpus()
        self.styles: dict[str, Style] = {}
        for path in paths:
            session = ort.InferenceSession(str(path), options, providers=providers)
            if providers[0] != CPU and session.get_providers()[0] != CUDA:
                # The CUDA libraries did not load: say it once, then stop trying for every model.
                if require_gpu:
                    raise GpuRequiredError(
                        "REQUIRE_GPU=1 but the CUDA provider failed to load (see the onnxruntime "
                        "error above: driver, CUDA or cuDNN libraries)"
                    )
                log.warning("CUDA provider unavailable; running on CPU")
                providers = [CPU]
            self.provider = session.get_providers()[0]
            meta = dict(session.get_modelmeta().custom_metadata_map)
            name = meta.get("name") or path.stem
            if name in self.styles:
                raise RuntimeError(f"two models in {model_dir} are both named {name!r}")
            self.styles[name] = Style(name, session, meta)

        if default_style and default_style not in self.styles:
            raise RuntimeError(
                f"DEFAULT_STYLE={default_style!r} is not one of {sorted(self.styles)}"
            )
        self.default = default_style or (
            PREFERRED_DEFAULT if PREFERRED_DEFAULT in self.styles else min(self.styles)
        )
        # Runs beyond this wait; on CPU one run already uses every core.
        limit = max_concurrent_runs or (2 if self.provider == CUDA else 1)
        self.max_concurrent_runs = limit
        self._slots = threading.BoundedSemaphore(limit)
        self.queue_timeout_s = queue_timeout_s
        self.max_queued_requests = max_queued_requests
        self._admitted = 0
        self._admitted_lock = threading.Lock()

    def get(self, name: str | None) -> Style:
        style = self.styles.get(name or self.default)
        if style is None:
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise ApiError(
                404,
                "unknown_style",
                f"No style named {shown!r}. Available styles: {', '.join(sorted(self.styles))} "
                "(GET /styles lists them).",
            )
        return style

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `max_concurrent_runs + max_queued_requests` places for a request's
        decode, inference and encode; refuse at once when all are taken. Without this bound a
        burst piles decoded images up in memory (one per server thread), each waiting up to
        `queue_timeout_s` before it is refused anyway."""
        with self._admitted_lock:
            if self._admitted >= self.max_concurrent_runs + self.max_queued_requests:
                raise _overloaded(
                    f"{self.max_queued_requests} requests are already waiting for the "
                    f"{self.max_concurrent_runs} inference slots (MAX_QUEUED_REQUESTS). "
                    "Retry after a few seconds."
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._admitted_lock:
                self._admitted -= 1

    def stylize(self, style: Style, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W, 3) uint8, the same size."""
        if not self._slots.acquire(timeout=self.queue_timeout_s):
            raise _overloaded(
                f"All {self.max_concurrent_runs} inference slots stayed busy for "
                f"{self.queue_timeout_s:g} s. Retry after a few seconds."
            )
        try:
            (out,) = style.session.run(None, {"image": rgb[None]})
        finally:
            self._slots.release()
        return out[0]


def _overloaded(message: str) -> ApiError:
    return ApiError(503, "overloaded", message, headers={"Retry-After": "5"})


def blend(original: np.ndarray, stylized: np.ndarray, strength: float) -> np.ndarray:
    """Linear mix: 0 gives the original back, 1 the full style."""
    if strength >= 1.0:
        return stylized
    mixed = original.astype(np.float32) * (1.0 - strength) + stylized.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
