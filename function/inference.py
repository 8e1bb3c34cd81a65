"""ONNX Runtime sessions and the style registry. Pure numpy in and out; no HTTP here.

A style comes in up to one model per arch (`NAME.onnx`, johnson, and `NAME.fast.onnx`, fast:
both with metadata name=NAME). The registry reads every model's metadata at start, without a
session, and builds each model's session on its first use, once per process; the default
style's default arch is built (and run once) at start. Sessions are shared by all request
threads (ONNX Runtime's `run` is thread-safe), and a semaphore bounds how many runs execute at
once, so a burst queues instead of oversubscribing the CPU cores or the GPU's memory.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnxruntime as ort
from config import ARCHS
from errors import ApiError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERRED_DEFAULT = "starry_night"
# The arch a request gets when it names none (and DEFAULT_ARCH is unset): on a CPU the fast
# network (~40 ms at 512x512, against ~550 ms for johnson); on a GPU both are fast enough, so
# the better one.
ARCH_FOR_PROVIDER = {CPU: "fast", CUDA: "johnson"}
WARM_UP_SHAPE = (1, 64, 64, 3)


class GpuRequiredError(RuntimeError):
    """REQUIRE_GPU=1 but the CUDA provider could not be used."""


# --- model metadata without a session -----------------------------------------------------------

# Why a protobuf reader of our own: /styles and the start-up checks need every model's metadata,
# and with lazy sessions nothing else needs the files at start. Measured on a 2-core CPU
# (12 models: 6 johnson fp16 of 3.4 MB, 6 fast fp32 of 1.7 MB): an ORT session costs 34 ms
# (johnson) / 16 ms (fast), and 34 / 17 ms with graph optimizations off, since it still parses
# and resolves the whole graph: 0.3 s for all 12, the cost lazy sessions avoid. The `onnx`
# package reads them in 0.5 ms each but takes 60-90 ms to import, on every cold start, and is
# not a runtime dependency. This reader takes ~0.1 ms per model: metadata_props is a top-level
# field of ModelProto, and the graph, which is nearly all of the file, is skipped by its length.
_MODEL_GRAPH = 7  # ModelProto.graph
_MODEL_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto.key, .value
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # protobuf wire types


def _varint(f: BinaryIO) -> int | None:
    """The next base-128 varint, or None at the very end of the message."""
    value = shift = 0
    while byte := f.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    if shift:
        raise ValueError("truncated varint")
    return None


def _fields(f: BinaryIO, size: int, keep: Iterable[int]) -> Iterator[tuple[int, bytes | None]]:
    """(field number, payload) for each field of the message in `f`, which ends at `size`; the
    payload of a length-delimited field in `keep` is read, every other field is skipped."""
    keep = set(keep)
    while (key := _varint(f)) is not None:
        number, wire = key >> 3, key & 7
        payload = None
        if wire == _VARINT:
            if _varint(f) is None:
                raise ValueError("truncated varint")
        elif wire in (_I64, _I32):
            f.seek(8 if wire == _I64 else 4, os.SEEK_CUR)
        elif wire == _LEN:
            length = _varint(f)
            if length is None or f.tell() + length > size:
                raise ValueError(f"field {number} runs past the end of the file")
            if number in keep:
                payload = f.read(length)
            else:
                f.seek(length, os.SEEK_CUR)
        else:
            raise ValueError(f"field {number} has wire type {wire}, which ONNX never writes")
        if f.tell() > size:
            raise ValueError("the file ends inside a field")
        yield number, payload


def _entry(data: bytes) -> tuple[str, str]:
    with io.BytesIO(data) as f:
        found = dict(_fields(f, len(data), (_ENTRY_KEY, _ENTRY_VALUE)))
    return (found.get(_ENTRY_KEY) or b"").decode(), (found.get(_ENTRY_VALUE) or b"").decode()


def read_metadata(path: Path) -> dict[str, str]:
    """A model file's metadata_props, read from the protobuf wire format (see above)."""
    props: dict[str, str] = {}
    has_graph = False
    with path.open("rb") as f:
        for number, payload in _fields(f, path.stat().st_size, (_MODEL_METADATA_PROPS,)):
            has_graph |= number == _MODEL_GRAPH
            if number == _MODEL_METADATA_PROPS and payload is not None:
                key, value = _entry(payload)
                props[key] = value
    if not has_graph:
        raise ValueError("no graph in it")
    return props


# --- the catalog of models: styles x archs ------------------------------------------------------


@dataclass(eq=False)
class Model:
    """One ONNX file: one style in one arch. `session` is set once, fully built, on first use
    (StyleRegistry.session); until then it is None."""

    name: str
    arch: str
    path: Path
    metadata: dict[str, str]
    session: ort.InferenceSession | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def key(self) -> str:
        """`name/arch`: how responses (X-Style-Model) and logs name the model."""
        return f"{self.name}/{self.arch}"

    def describe(self) -> dict:
        """Public per-arch metadata for /styles (the file path never leaves the server)."""
        m = self.metadata
        return {
            "arch": self.arch,
            "precision": m.get("precision", "fp32"),
            "training_steps": int(m["training_steps"]) if m.get("training_steps") else None,
            "loss_net": m.get("loss_net", "unknown"),
            "image_size": int(m["image_size"]) if m.get("image_size") else None,
        }


@dataclass(frozen=True)
class Style:
    name: str
    models: dict[str, Model]  # by arch, in ARCHS order; never empty

    def arch_for(self, preferred: str) -> str:
        """The arch a request that names none gets: the preferred one if this style has it,
        else the one it has."""
        return preferred if preferred in self.models else next(iter(self.models))

    def describe(self, preferred_arch: str) -> dict:
        first = next(iter(self.models.values())).metadata
        return {
            "name": self.name,
            "title": first.get("title", self.name),
            "artist": first.get("artist", "unknown"),
            "archs": list(self.models),
            "default_arch": self.arch_for(preferred_arch),
            "models": [m.describe() for m in self.models.values()],
        }


def _model(path: Path) -> Model:
    try:
        meta = read_metadata(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RuntimeError(
            f"{path} is not a readable ONNX model ({e}); re-export it with python -m export, "
            "or remove it from MODEL_DIR"
        ) from None
    arch = meta.get("arch") or "johnson"  # models exported before `fast` existed say nothing
    if arch not in ARCHS:
        raise RuntimeError(
            f"{path} has arch {arch!r}, which this function does not serve (it serves "
            f"{', '.join(ARCHS)}); re-export it or remove it from MODEL_DIR"
        )
    return Model(meta.get("name") or path.stem, arch, path, meta)


def load_catalog(paths: Iterable[Path]) -> dict[str, Style]:
    """Every model's metadata (no sessions), grouped by style name; refuses two files that are
    the same style in the same arch, which would leave it to file order which one serves."""
    models: dict[tuple[str, str], Model] = {}
    for path in paths:
        model = _model(path)
        other = models.get((model.name, model.arch))
        if other is not None:
            raise RuntimeError(
                f"{other.path.name} and {path.name} in {path.parent} are both style "
                f"{model.name!r} in arch {model.arch!r}; a style has at most one model per "
                "arch: remove one, or fix its name/arch metadata when exporting"
            )
        models[(model.name, model.arch)] = model
    names = sorted({name for name, _ in models})
    return {n: Style(n, {a: models[(n, a)] for a in ARCHS if (n, a) in models}) for n in names}


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


def check_setup(
    model_dir: str | Path, require_gpu: bool, default_style: str | None = None
) -> dict[str, Style]:
    """The styles, after the checks that need no session (so they are safe to run before a
    fork): some models exist and their metadata reads, no style has two models of one arch,
    DEFAULT_STYLE is one of them, and the build has CUDA when a GPU is required."""
    paths = sorted(Path(model_dir).glob("*.onnx"))
    if not paths:
        raise RuntimeError(f"no *.onnx style models in {model_dir}; set MODEL_DIR")
    if require_gpu and CUDA not in ort.get_available_providers():
        raise GpuRequiredError("REQUIRE_GPU=1 but this onnxruntime build has no CUDA provider")
    styles = load_catalog(paths)
    if default_style and default_style not in styles:
        raise RuntimeError(f"DEFAULT_STYLE={default_style!r} is not one of {sorted(styles)}")
    return styles


class StyleRegistry:
    """Every `*.onnx` in `model_dir`, by style name and arch; sessions built on first use.

    Why lazy: measured on a 2-core CPU (shared with other work) with 12 models, 6 styles in
    both archs, from process start: building every session at start put the first /healthz at
    1.2 s and the first stylized image at 1.4 s; building only the default's, 0.5 s and 0.7 s.
    A session costs 34-90 ms (johnson fp16) or 16-50 ms (fast fp32) on its first request, and
    a model nobody asks for never takes memory (on a GPU, device memory).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        default_style: str | None = None,
        default_arch: str | None = None,
        require_gpu: bool = False,
        max_concurrent_runs: int | None = None,
        queue_timeout_s: float = 30.0,
        max_queued_requests: int = 16,
        threads: int | None = None,
    ):
        self.styles = check_setup(model_dir, require_gpu, default_style)
        self.models = {m.key: m for s in self.styles.values() for m in s.models.values()}
        self.default = default_style or (
            PREFERRED_DEFAULT if PREFERRED_DEFAULT in self.styles else min(self.styles)
        )
        self._require_gpu = require_gpu
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = threads or available_cpus()
        self._providers: list = [CPU]
        self.provider = CPU  # what the sessions really run on; settled by the first session
        if CUDA in ort.get_available_providers():
            if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from pip wheels, onnxruntime >= 1.21
                ort.preload_dlls()
            self._providers = cuda_providers()
            self.provider = CUDA
        self._provider_lock = threading.Lock()
        self._configured_arch = default_arch
        self.default_arch = default_arch or ARCH_FOR_PROVIDER[self.provider]
        self._warm_default()

        # Runs beyond this wait; on CPU one run already uses every core.
        limit = max_concurrent_runs or (2 if self.provider == CUDA else 1)
        self.max_concurrent_runs = limit
        self._slots = threading.BoundedSemaphore(limit)
        self.queue_timeout_s = queue_timeout_s
        self.max_queued_requests = max_queued_requests
        self._admitted = 0
        self._admitted_lock = threading.Lock()

    def _warm_default(self) -> None:
        """Build the default style's default-arch session and run it once on a small image, so
        the first request pays for neither (on a GPU the first run also sets up cuDNN).

        The first session also settles the provider: an onnxruntime-gpu build whose CUDA
        libraries do not load falls back to the CPU. The default arch depends on the provider,
        so it is resolved again afterwards; on such a machine that may build a second session
        (the johnson one is then simply ready before its first use)."""
        self.session(self.get(self.default))
        self.default_arch = self._configured_arch or ARCH_FOR_PROVIDER[self.provider]
        model = self.get(self.default)
        self.session(model).run(None, {"image": np.zeros(WARM_UP_SHAPE, np.uint8)})

    def get(self, name: str | None, arch: str | None = None) -> Model:
        """The model for a request: `arch` None means the style's default arch."""
        style = self.styles.get(name or self.default)
        if style is None:
            shown = name if len(name) <= 64 else name[:64] + "..."
            raise ApiError(
                404,
                "unknown_style",
                f"No style named {shown!r}. Available styles: {', '.join(sorted(self.styles))} "
                "(GET /styles lists them).",
            )
        if arch is None:
            return style.models[style.arch_for(self.default_arch)]
        model = style.models.get(arch)
        if model is None:
            raise ApiError(
                404,
                "arch_unavailable",
                f"Style {style.name!r} has no {arch!r} model; it has "
                f"{', '.join(style.models)}. Ask for one of those, or leave out arch to get "
                f"{style.arch_for(self.default_arch)} (GET /styles lists each style's archs).",
            )
        return model

    def session(self, model: Model) -> ort.InferenceSession:
        """The model's session, built on first use. Double-checked under the model's own lock:
        concurrent first requests build it once and wait for it, never see it half-built
        (`session` is assigned only once it is complete), and other models are not blocked."""
        session = model.session
        if session is not None:
            return session
        with model.lock:
            if model.session is None:
                model.session = self._build(model)
            return model.session

    def _build(self, model: Model) -> ort.InferenceSession:
        t0 = time.perf_counter()
        providers = self._providers
        session = ort.InferenceSession(str(model.path), self._options, providers=providers)
        got = session.get_providers()[0]
        if providers[0] != CPU and got != CUDA:
            # The CUDA libraries did not load: say it once, then stop trying for every model.
            if self._require_gpu:
                raise GpuRequiredError(
                    "REQUIRE_GPU=1 but the CUDA provider failed to load (see the onnxruntime "
                    "error above: driver, CUDA or cuDNN libraries)"
                )
            with self._provider_lock:
                if self._providers[0] != CPU:
                    log.warning("CUDA provider unavailable; running on CPU")
                    self._providers = [CPU]
                    self.provider = CPU
        fields = {
            "model": model.key,
            "provider": got,
            "ms": round((time.perf_counter() - t0) * 1e3, 1),
        }
        log.info("session created", extra={"fields": fields})
        return session

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

    def stylize(self, model: Model, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W, 3) uint8, the same size."""
        # Built (on first use) before taking a slot: a build does not hold up other models' runs.
        session = self.session(model)
        if not self._slots.acquire(timeout=self.queue_timeout_s):
            raise _overloaded(
                f"All {self.max_concurrent_runs} inference slots stayed busy for "
                f"{self.queue_timeout_s:g} s. Retry after a few seconds."
            )
        try:
            (out,) = session.run(None, {"image": rgb[None]})
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
