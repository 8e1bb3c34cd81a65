"""What each serving process builds once and all its request threads share: the models'
sessions, the full-resolution graphs' sessions, admission, the thumbnails. Built in the process
that serves, never before a fork."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import numpy as np

from stylefn.arbitrary.cache import PaintingCache
from stylefn.arbitrary.painter import AnalysedPainting, ArbitraryPainter
from stylefn.contract import ARBITRARY_DIR
from stylefn.imaging.upsample import GRAPHS, Finish, Upsampler
from stylefn.ops import memory
from stylefn.ops.admission import Admission
from stylefn.ops.config import Config
from stylefn.styles.mix import Choice
from stylefn.styles.registry import CUDA, StyleRegistry, session_options
from stylefn.styles.thumbnails import Thumbnails


class Instance:
    def __init__(self, config: Config):
        self.registry = StyleRegistry(
            config.model_dir,
            default_style=config.default_style,
            default_arch=config.default_arch,
            require_gpu=config.require_gpu,
        )
        # Runs beyond this wait; on CPU one run already uses every core. Known only now: the
        # registry's first session settles the provider.
        runs = config.max_concurrent_runs or (2 if self.registry.provider == CUDA else 1)
        # Pixels in flight: what the instance's memory holds (ops/memory.py), unless configured.
        pixels = config.max_inflight_pixels or memory.default_inflight_pixels(config.max_pixels)
        self.admission = Admission(runs, config.max_queued_requests, config.queue_timeout_s, pixels)
        self.thumbnails = Thumbnails(self.registry.get, self.stylize)
        # Built after the registry's first session settled the provider, so they run where the
        # models do. Their runs are short and, for the strip graph, many: threads that sleep
        # between them instead of spinning leave the cores to the request's other work
        # (measured on a loaded 2-core machine: 0.41 s for a 12 MP photo, 0.75 s spinning). The
        # strip graph's arena reuses its buffers instead of page-faulting them in anew each
        # run (16.6 -> 10.4 ms a strip) and holds one strip's worth; the guide graph, once a
        # request, keeps none.
        threads = self.registry.threads
        for path in ArbitraryPainter.paths(GRAPHS / ARBITRARY_DIR):
            if not path.is_file():  # a broken deployment fails at start, not on its first use
                raise FileNotFoundError(f"{path}: the arbitrary-style graphs are missing")
        self._arbitrary: ArbitraryPainter | None = None
        self._arbitrary_lock = threading.Lock()
        self.paintings = PaintingCache(config.style_image_cache)
        guide, strips = Upsampler.paths()
        self.upsampler = Upsampler(
            self.registry.build(
                guide, "full resolution: guide", session_options(threads, spinning=False)
            ),
            self.registry.build(
                strips,
                "full resolution: strips",
                session_options(threads, arena=True, spinning=False),
            ),
        )

    def stylize(self, choice: Choice, rgb: np.ndarray) -> np.ndarray:
        """Paint with `choice` under an inference slot. Its session is built (on first use)
        before taking a slot: a build does not hold up other models' runs."""
        self.registry.session(choice.model)
        with self.admission.run_slot():
            return self.registry.stylize(choice, rgb)

    @property
    def arbitrary(self) -> ArbitraryPainter:
        """The style-image graphs' sessions, built on the first request that sends one."""
        with self._arbitrary_lock:
            if self._arbitrary is None:
                self._arbitrary = ArbitraryPainter(GRAPHS / ARBITRARY_DIR, self.registry.build)
            return self._arbitrary

    def analyse(self, painting: np.ndarray, side: int) -> AnalysedPainting:
        """A style image's statistics (arbitrary.painter), under an inference slot."""
        arbitrary = self.arbitrary
        with self.admission.run_slot():
            return arbitrary.analyse(painting, side)

    def paint_like(
        self, painting: AnalysedPainting, rgb: np.ndarray, strength: float
    ) -> np.ndarray:
        """`rgb` painted like a style image, under an inference slot."""
        arbitrary = self.arbitrary
        with self.admission.run_slot():
            return arbitrary.paint(rgb, painting, strength)

    def paint_with(
        self, choice: Choice, rgb: np.ndarray, stats: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """registry.paint_with under an inference slot: a video's frame."""
        if self.registry.tiles_session(choice.model) is None:  # built before taking a slot
            self.registry.session(choice.model)
        with self.admission.run_slot():
            return self.registry.paint_with(choice, rgb, stats)

    def upsample(
        self, photo: np.ndarray, painted: np.ndarray, photo_small: np.ndarray, finish: Finish
    ) -> np.ndarray:
        """The painting at the photo's size, finished, under an inference slot: on a CPU the
        graphs use every core, as a network run does."""
        with self.admission.run_slot():
            return self.upsampler(photo, painted, photo_small, finish)


class PerProcess:
    """One Instance per process, built on first use in the process that serves.

    Never before a fork: functions-framework imports main.py in gunicorn's master process,
    which then forks the worker, and ONNX Runtime's thread pools and CUDA contexts do not
    survive a fork (the worker's runs lose their threads, and CUDA fails outright).
    """

    def __init__(self, build: Callable[[], Instance]):
        self._build = build
        self._by_pid: dict[int, Instance] = {}
        self._lock = threading.Lock()

    def get(self) -> Instance:
        pid = os.getpid()
        with self._lock:
            if pid not in self._by_pid:
                built = self._build()
                self._by_pid.clear()
                self._by_pid[pid] = built
            return self._by_pid[pid]

    def load_in_background(self, log: logging.Logger) -> None:
        """Build this process's instance on a thread, so the first request does not pay for
        it. A worker that cannot build it (REQUIRE_GPU=1 without a working CUDA provider, a
        broken model) exits with gunicorn's boot-error status, which stops the whole server:
        better a failed start than an instance that answers 500s."""

        def load() -> None:
            try:
                self.get()
            except BaseException:
                log.critical("could not load the style models", exc_info=True)
                os._exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master halts

        threading.Thread(target=load, name="load-models", daemon=True).start()
