"""Admission and load shedding: how many requests may hold decoded images, how many of their
pixels may be in memory at once, and how many inference runs execute at once. Beyond any bound
a request waits a bounded time or is refused (Overloaded), never queued without limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from stylefn.ops import deadlines, memory


class Overloaded(RuntimeError):
    """Refused for lack of capacity; the message says which bound was hit. Worth a retry."""


class Admission:
    """`max_concurrent_runs` inference slots; `max_queued_requests` more places for requests
    that decode, encode or wait for a slot; and `max_inflight_pixels` decoded pixels among all
    of them, each request weighed by its image's pixel count (its memory grows with it: the
    decoded photo, the painting, blending and encoding buffers, all full size)."""

    def __init__(
        self,
        max_concurrent_runs: int,
        max_queued_requests: int,
        queue_timeout_s: float,
        max_inflight_pixels: int | None = None,  # None: no pixel bound
    ):
        self.max_concurrent_runs = max_concurrent_runs
        self.max_queued_requests = max_queued_requests
        self.queue_timeout_s = queue_timeout_s
        self.max_inflight_pixels = max_inflight_pixels
        self.slots = threading.BoundedSemaphore(max_concurrent_runs)
        self.admitted = 0  # requests inside `admit()` now
        self.inflight_pixels = 0  # their pixels, once each has its share
        self._changed = threading.Condition()

    @contextmanager
    def admit(self, pixels: int = 0) -> Iterator[None]:
        """Hold one of `max_concurrent_runs + max_queued_requests` places for a request's
        decode, inference and encode, refused at once when all are taken; then wait (up to
        `queue_timeout_s`, or the request's deadline) until its `pixels` fit under
        `max_inflight_pixels`. A request alone is always let in, however large: MAX_PIXELS
        bounds it. Without these bounds a burst piles decoded images up in memory (one per
        server thread) until the instance runs out of it."""
        with self._changed:
            if self.admitted >= self.max_concurrent_runs + self.max_queued_requests:
                raise Overloaded(
                    f"{self.max_queued_requests} requests are already waiting for the "
                    f"{self.max_concurrent_runs} inference slots (MAX_QUEUED_REQUESTS). "
                    "Retry after a few seconds."
                )
            self.admitted += 1
            try:
                self._wait_for_pixels(pixels)
            except BaseException:
                self.admitted -= 1
                self._changed.notify_all()
                raise
            self.inflight_pixels += pixels
        try:
            yield
        finally:
            with self._changed:
                self.admitted -= 1
                self.inflight_pixels -= pixels
                idle = self.admitted == 0
                self._changed.notify_all()
            if idle or pixels >= memory.TRIM_AFTER_PIXELS:
                memory.trim()  # the freed buffers back to the OS: see memory.trim

    def _wait_for_pixels(self, pixels: int) -> None:
        budget = self.max_inflight_pixels
        if budget is None:
            return

        def fits() -> bool:
            return self.inflight_pixels == 0 or self.inflight_pixels + pixels <= budget

        if not self._changed.wait_for(fits, deadlines.wait_timeout(self.queue_timeout_s)):
            deadlines.check()
            raise Overloaded(
                f"{self.inflight_pixels / 1e6:.1f} million pixels are being processed, and this "
                f"image's {pixels / 1e6:.1f} million would exceed the instance's "
                f"{budget / 1e6:.0f} million (MAX_INFLIGHT_PIXELS). Retry after a few seconds, "
                "or send a smaller image."
            )

    @contextmanager
    def run_slot(self) -> Iterator[None]:
        """One inference slot, waited for up to `queue_timeout_s` (or the request's
        deadline)."""
        if not self.slots.acquire(timeout=deadlines.wait_timeout(self.queue_timeout_s)):
            deadlines.check()
            raise Overloaded(
                f"All {self.max_concurrent_runs} inference slots stayed busy for "
                f"{self.queue_timeout_s:g} s. Retry after a few seconds."
            )
        try:
            yield
        finally:
            self.slots.release()
