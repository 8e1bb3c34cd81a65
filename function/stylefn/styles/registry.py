"""ONNX Runtime sessions for the catalog's models: CUDA first with a fallback to the CPU, built
on first use, the default one warmed at start. Pure numpy in and out; no HTTP here.

The registry reads every model's metadata at start (catalog.py), without a session, and builds
each model's session on its first use, once per process. Sessions are shared by all request
threads (ONNX Runtime's `run` is thread-safe); how many runs execute at once is ops/admission.py's
business, not this module's.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from stylefn.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    STATS_OUTPUT,
    STYLE_WEIGHTS_INPUT,
)
from stylefn.ops import deadlines
from stylefn.styles.catalog import (
    Model,
    Style,
    choose_default_style,
    load_catalog,
    model_paths,
)
from stylefn.styles.mix import Choice, Mix, choose
from stylefn.styles.tiling import norm_statistics, paint_in_tiles, statistics_feed

log = logging.getLogger("inference")  # a name ops/logs.py configures

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# The arch a request gets when it names none (and DEFAULT_ARCH is unset): on a CPU the fast
# network (~40 ms at 512x512, against ~550 ms for johnson); on a GPU both are fast enough, so
# the better one.
ARCH_FOR_PROVIDER = {CPU: "fast", CUDA: "johnson"}
WARM_UP_SHAPE = (1, 64, 64, 3)
# Pixels one network run may hold, by arch; larger paintings go in tiles (tiling.py). Measured
# peak memory of one run on the CPU provider without its arena: fast +276 MiB at 2 MP (+551 at
# 4 MP), johnson +749 MiB at 1 MP (+1005 at 2 MP), so a 24 MP request stays well under 2 GiB.
RUN_PIXELS = {"fast": 2_000_000, "johnson": 1_000_000}
MAX_PAINT_PIXELS = 40_000_000  # with a tile graph: a 40 MP photo painted at its own size


def style_feed(choice: Choice) -> dict[str, np.ndarray]:
    """The style weights a multi-style graph takes with the image; nothing for a single style."""
    return {} if choice.weights is None else {STYLE_WEIGHTS_INPUT: choice.weights}


class DeadlineSession(ort.InferenceSession):
    """An InferenceSession whose runs stop at the current request's deadline (RunOptions with
    `terminate` set by a timer, deadlines.run_options), whoever calls `run`: a whole image
    here, or tile by tile (tiling.py). Outside a request it is a plain session."""

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return super().run(output_names, input_feed, run_options or deadlines.run_options())


class GpuRequiredError(RuntimeError):
    """REQUIRE_GPU=1 but the CUDA provider could not be used."""


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


def cuda_providers() -> list[Any]:
    return [(CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]


def session_options(
    threads: int, *, arena: bool = False, spinning: bool = True
) -> ort.SessionOptions:
    """Options for every session of the process: `threads` intra-op threads. No CPU arena by
    default: it keeps every run's peak for the life of the process (a 2048x2048 johnson run
    left the worker at 5.3 GiB). Without it a run's buffers are freed after it; measured at
    1024x1024 johnson: peak 1.2 -> 0.56 GiB, after 1.2 GiB -> 0.1 GiB, and no slower (7.4 s
    against 8.3 s). CUDA memory has its own arena, unaffected. `arena` for graphs whose runs
    are small and many (imaging/upsample.py), `spinning` False for threads that sleep between
    them."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_cpu_mem_arena = arena
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def check_setup(
    model_dir: str | Path, require_gpu: bool, default_style: str | None = None
) -> dict[str, Style]:
    """The styles, after the checks that need no session (so they are safe to run before a
    fork): some models exist and their metadata reads, no style has two models of one arch,
    DEFAULT_STYLE is one of them, and the build has CUDA when a GPU is required."""
    paths = model_paths(model_dir)
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
        threads: int | None = None,
    ):
        self.styles = check_setup(model_dir, require_gpu, default_style)
        self.models = {m.key: m for s in self.styles.values() for m in s.models.values()}
        self.default = choose_default_style(self.styles, default_style)
        self._require_gpu = require_gpu
        self.threads = threads or available_cpus()
        self._options = session_options(self.threads)
        self._providers: list[Any] = [CPU]
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

    def _warm_default(self) -> None:
        """Build the default style's default-arch session and run it once on a small image, so
        the first request pays for neither (on a GPU the first run also sets up cuDNN).

        The first session also settles the provider: an onnxruntime-gpu build whose CUDA
        libraries do not load falls back to the CPU. The default arch depends on the provider,
        so it is resolved again afterwards; on such a machine that may build a second session
        (the johnson one is then simply ready before its first use)."""
        self.session(self.get(self.default).model)
        self.default_arch = self._configured_arch or ARCH_FOR_PROVIDER[self.provider]
        self.stylize(self.get(self.default), np.zeros(WARM_UP_SHAPE[1:], np.uint8))

    def get(self, style: str | Mix | None, arch: str | None = None) -> Choice:
        """What a request paints with: `style` a name or a mix (None: the default style),
        `arch` None for the styles' default arch. Raises catalog.UnknownStyle,
        catalog.ArchUnavailable or mix.Unmixable."""
        mix = style if isinstance(style, Mix) else Mix(((style or self.default, 1.0),))
        return choose(self.styles, mix, arch, self.default_arch)

    def session(self, model: Model) -> ort.InferenceSession:
        """The model's session, built on first use. Double-checked under the model's own lock:
        concurrent first requests build it once and wait for it, never see it half-built
        (`session` is assigned only once it is complete), and other models are not blocked."""
        session = model.session
        if session is not None:
            return session
        with model.lock:
            if model.session is None:
                model.session = self.build(model.path, model.key)
            return model.session

    def tiles_session(self, model: Model) -> ort.InferenceSession | None:
        """The session of the model's tile graph (tiling.py), built on first use like
        `session`; None for a model exported without one."""
        if model.tiles_session is not None or model.tiles_path is None:
            return model.tiles_session
        with model.lock:
            if model.tiles_session is None:
                model.tiles_session = self.build(model.tiles_path, model.key + " tiles")
            return model.tiles_session

    def max_paint_pixels(self, model: Model) -> int:
        """The most pixels `stylize` paints for this model: any number with a tile graph, else
        what one run may hold."""
        return MAX_PAINT_PIXELS if model.tiles_path else RUN_PIXELS[model.arch]

    def build(
        self, path: Path, key: str, options: ort.SessionOptions | None = None
    ) -> ort.InferenceSession:
        """A session of `path` on the process's provider (the CUDA fallback settled here), with
        the registry's options unless given: the models', and the full-resolution graphs'."""
        t0 = time.perf_counter()
        providers = self._providers
        session = DeadlineSession(str(path), options or self._options, providers=providers)
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
            "model": key,
            "provider": got,
            "ms": round((time.perf_counter() - t0) * 1e3, 1),
        }
        log.info("session created", extra={"fields": fields})
        return session

    def stylize(self, choice: Choice, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W, 3) uint8, the same size; in tiles when the image is over
        one run's RUN_PIXELS and the model has a tile graph (else `max_paint_pixels` bounds
        it)."""
        model, h, w = choice.model, *rgb.shape[:2]
        style = style_feed(choice)
        budget = RUN_PIXELS[model.arch]
        tiles = self.tiles_session(model) if h * w > budget else None
        if tiles is not None:
            return paint_in_tiles(tiles, rgb, max_pixels=budget, style=style)
        (out,) = self.session(model).run([OUTPUT_NAME], {INPUT_NAME: rgb[None], **style})
        return out[0]

    def paint_with(
        self, choice: Choice, rgb: np.ndarray, stats: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W, 3) uint8 painted with the instance-norm statistics `stats` (2, S) instead of
        its own (None: its own), and its own statistics: what a video's frames share
        (video/painter.py). Through the tile graph; a model without one paints each frame
        with its own statistics and reports none."""
        model, h, w = choice.model, *rgb.shape[:2]
        style = style_feed(choice)
        tiles = self.tiles_session(model)
        if tiles is None:
            return self.stylize(choice, rgb), None
        budget = RUN_PIXELS[model.arch]
        if h * w > budget:  # in tiles, with the statistics of the whole frame shrunk to one run
            own = norm_statistics(tiles, rgb, budget, style)
            painted = paint_in_tiles(
                tiles, rgb, max_pixels=budget, stats=own if stats is None else stats, style=style
            )
            return painted, own
        feeds = {INPUT_NAME: rgb[None], **statistics_feed(tiles, stats), **style}
        painted, own = tiles.run([OUTPUT_NAME, STATS_OUTPUT], feeds)
        return painted[0], own[0]
