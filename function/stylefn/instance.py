"""What each serving process builds once and all its request threads share: the models'
sessions, admission, the thumbnails. Built in the process that serves, never before a fork."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import numpy as np

from stylefn.ops import memory
from stylefn.ops.admission import Admission
from stylefn.ops.config import Config
from stylefn.styles.mix import Choice
from stylefn.styles.registry import CUDA, StyleRegistry
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

    def stylize(self, choice: Choice, rgb: np.ndarray) -> np.ndarray:
        """Paint with `choice` under an inference slot. Its session is built (on first use)
        before taking a slot: a build does not hold up other models' runs."""
        self.registry.session(choice.model)
        with self.admission.run_slot():
            return self.registry.stylize(choice, rgb)


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
