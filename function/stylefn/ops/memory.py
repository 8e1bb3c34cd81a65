"""The process's memory: how much the instance may use, what a request's pixels cost, and giving
freed buffers back to the OS after a large request."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from pathlib import Path

# Peak bytes a request holds per pixel of its image: the upload, the decoded RGB, the painting,
# blending and colour preservation, the encoder's copies. Measured through the server on a
# 12 MP JPEG (fast network, tiled): 22 bytes a pixel at the peak, with or without strength and
# preserve_color; twice that leaves room for johnson's larger runs. ~1.9 GB for a 40 MP photo.
BYTES_PER_PIXEL = 48
# Of the instance's memory limit, the share that admitted requests' pixels may use; the rest is
# the models, ONNX Runtime's runs (bounded per run by tiling) and the interpreter.
PIXEL_SHARE = 0.5
TRIM_AFTER_PIXELS = 4_000_000  # requests this large give their freed memory back (memory.trim)


def limit_bytes() -> int:
    """The memory this process may use: the cgroup's limit (a container's, Cloud Run's) where
    there is one, else the machine's physical memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:  # cgroup v1 writes ~2**63 for "no limit"
            return int(raw)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_inflight_pixels(max_pixels: int) -> int:
    """MAX_INFLIGHT_PIXELS when unset: PIXEL_SHARE of the memory limit at BYTES_PER_PIXEL, and
    never less than one image of MAX_PIXELS."""
    return max(max_pixels, int(limit_bytes() * PIXEL_SHARE) // BYTES_PER_PIXEL)


def _libc(function: str) -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return None
    return found


_MALLOC_TRIM = _libc("malloc_trim")
_MALLOPT = _libc("mallopt")
_M_ARENA_MAX = -8  # glibc's malloc.h
MALLOC_ARENAS = 2


def limit_arenas() -> None:
    """At most MALLOC_ARENAS glibc malloc arenas for this process and the workers forked from
    it (what MALLOC_ARENA_MAX=2 does, set from inside). glibc gives threads arenas of their
    own, up to 8 per core: with 32 request threads a worker's resident memory kept climbing
    as requests reached threads whose arena was still new (a 4 s soak of 16 clients: +13-24 %
    over its second half, with no leak); with 2 arenas the soak stays flat."""
    if _MALLOPT is not None:
        _MALLOPT(_M_ARENA_MAX, MALLOC_ARENAS)


def trim() -> None:
    """Return free heap memory to the OS (glibc's malloc_trim). glibc keeps freed memory in its
    per-thread arenas, so without this a worker stays at its peak: measured, a 1024x1024
    johnson run left 106 MiB resident, 57 MiB after the trim (the baseline); a burst of 16
    small requests left the worker 100 MiB above its start. Admission calls it after a large
    request and whenever the instance goes idle."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
