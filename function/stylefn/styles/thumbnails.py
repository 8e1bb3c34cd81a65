"""Each style's rendering of the bundled sample photo (a Kodak test image, 192x128), which the
page's style cards show: rendered on first request, then kept in memory for the instance."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from PIL import Image

from stylefn.imaging.encode import encode_image
from stylefn.ops.config import FUNCTION_DIR
from stylefn.styles.mix import Choice

SAMPLE = FUNCTION_DIR / "static" / "sample.jpg"


class Thumbnails:
    """JPEG bytes of the sample photo in each style, by style name.

    Names only ever go through `find` (StyleRegistry.get), a dict lookup: an unknown one raises
    catalog.UnknownStyle and never becomes a file path. `stylize` runs a model as a request
    does (instance.Instance.stylize: under an inference slot).
    """

    def __init__(
        self,
        find: Callable[[str], Choice],
        stylize: Callable[[Choice, np.ndarray], np.ndarray],
    ):
        self._find = find
        self._stylize = stylize
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._sample: np.ndarray | None = None

    def jpeg(self, name: str) -> bytes:
        choice = self._find(name)  # the style's default arch, as a plain request gets
        cached = self._cache.get(choice.key)
        if cached is not None:
            return cached
        if self._sample is None:
            with Image.open(SAMPLE) as img:
                self._sample = np.array(img.convert("RGB"))
        # Rendered outside the lock: two first requests may both render, which is harmless,
        # and a slow style never blocks another style's thumbnail.
        data = encode_image(self._stylize(choice, self._sample), None, "jpeg", 85)
        with self._lock:
            return self._cache.setdefault(choice.key, data)
