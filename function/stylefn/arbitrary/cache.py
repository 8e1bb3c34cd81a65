"""Analysed paintings kept by content, so a client sending the same painting again skips its
decode and analysis: a bounded least-recently-used map from (SHA-256 of the file, analysis
side) to painter.AnalysedPainting, shared by the process's request threads."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from stylefn.arbitrary.painter import AnalysedPainting

Key = tuple[str, int]


def painting_key(data: bytes, side: int) -> Key:
    return hashlib.sha256(data).hexdigest(), side


class PaintingCache:
    """At most `max_entries` paintings (each ~0.2 MB of statistics); 0 turns caching off."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, AnalysedPainting] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(
        self, key: Key, analyse: Callable[[], AnalysedPainting]
    ) -> tuple[AnalysedPainting, bool]:
        """The painting under `key`, analysed now (outside the lock: other threads go on) if
        it is not kept; and whether it was kept."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found, True
            self.misses += 1
        analysed = analyse()
        if self.max_entries:
            with self._lock:
                self._entries[key] = analysed
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return analysed, False

    def __len__(self) -> int:
        return len(self._entries)
