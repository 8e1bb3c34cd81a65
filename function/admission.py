"""Admission and load shedding: how many requests may hold decoded images, and how many
inference runs execute at once. Beyond either bound a request is refused (Overloaded) rather
than queued without limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Overloaded(RuntimeError):
    """Refused for lack of capacity; the message says which bound was hit. Worth a retry."""


class Admission:
    """`max_concurrent_runs` inference slots, and `max_queued_requests` more places for requests
    that decode, encode or wait for a slot."""

    def __init__(self, max_concurrent_runs: int, max_queued_requests: int, queue_timeout_s: float):
        self.max_concurrent_runs = max_concurrent_runs
        self.max_queued_requests = max_queued_requests
        self.queue_timeout_s = queue_timeout_s
        self.slots = threading.BoundedSemaphore(max_concurrent_runs)
        self.admitted = 0  # requests inside `admit()` now
        self._admitted_lock = threading.Lock()

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `max_concurrent_runs + max_queued_requests` places for a request's
        decode, inference and encode; refuse at once when all are taken. Without this bound a
        burst piles decoded images up in memory (one per server thread), each waiting up to
        `queue_timeout_s` before it is refused anyway."""
        with self._admitted_lock:
            if self.admitted >= self.max_concurrent_runs + self.max_queued_requests:
                raise Overloaded(
                    f"{self.max_queued_requests} requests are already waiting for the "
                    f"{self.max_concurrent_runs} inference slots (MAX_QUEUED_REQUESTS). "
                    "Retry after a few seconds."
                )
            self.admitted += 1
        try:
            yield
        finally:
            with self._admitted_lock:
                self.admitted -= 1

    @contextmanager
    def run_slot(self) -> Iterator[None]:
        """One inference slot, waited for up to `queue_timeout_s`."""
        if not self.slots.acquire(timeout=self.queue_timeout_s):
            raise Overloaded(
                f"All {self.max_concurrent_runs} inference slots stayed busy for "
                f"{self.queue_timeout_s:g} s. Retry after a few seconds."
            )
        try:
            yield
        finally:
            self.slots.release()
