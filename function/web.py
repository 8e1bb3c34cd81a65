"""The browser page (GET /) and the pictures its style cards show; routing is routing.py's.

All are read or rendered once per instance and kept in memory: the page is a static file, a
painting is the thumbnail embedded in the style's model (catalog.Model.painting), and a
thumbnail is the bundled sample photo (a Kodak test image, 192x128) run through one style.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import flask
import numpy as np
from catalog import Model, Style, find_style
from errors import not_found
from imaging import encode_image
from PIL import Image

STATIC = Path(__file__).resolve().parent / "static"

# Everything the page needs is inline or from this origin; the policy makes a stray CDN link
# fail in the browser (and in tests) instead of silently working only while online.
PAGE_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


INDEX_HTML = (STATIC / "index.html").read_bytes()


def index() -> flask.Response:
    """The single-page UI."""
    return flask.Response(
        INDEX_HTML,
        content_type="text/html; charset=utf-8",
        headers=PAGE_HEADERS,
    )


def painting(request: flask.Request, styles: dict[str, Style], name: str) -> flask.Response:
    """The style's painting, as embedded in its model; unknown style: 404 unknown_style."""
    found = find_style(styles, name).painting
    if found is None:
        raise not_found(
            f"Style {name!r} has no painting thumbnail in its model (GET /styles says "
            "painting_url: null); add one with python -m export.add_painting MODEL.onnx "
            "--painting STYLE_IMAGE"
        )
    # An hour, as the thumbnails (a redeploy may swap the model); after that, the ETag (the
    # bytes' hash) makes revalidating a 304 while the painting is unchanged.
    response = flask.Response(
        found.jpeg, mimetype="image/jpeg", headers={"Cache-Control": "public, max-age=3600"}
    )
    response.set_etag(found.etag)
    response.make_conditional(request)  # in place: a 304 without the body when the ETag matches
    return response


class Thumbnails:
    """Each style's rendering of the sample photo, made on first request and then cached.

    Names only ever go through `find` (StyleRegistry.get), a dict lookup: an unknown one is the
    usual 404 unknown_style and never becomes a file path. `stylize` runs a model as a request
    does (instance.Instance.stylize: under an inference slot).
    """

    def __init__(
        self,
        find: Callable[[str], Model],
        stylize: Callable[[Model, np.ndarray], np.ndarray],
    ):
        self._find = find
        self._stylize = stylize
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._sample: np.ndarray | None = None

    def jpeg(self, name: str) -> bytes:
        model = self._find(name)  # the style's default arch, as a plain request gets
        cached = self._cache.get(model.key)
        if cached is not None:
            return cached
        if self._sample is None:
            with Image.open(STATIC / "sample.jpg") as img:
                self._sample = np.array(img.convert("RGB"))
        # Rendered outside the lock: two first requests may both render, which is harmless,
        # and a slow style never blocks another style's thumbnail.
        data = encode_image(self._stylize(model, self._sample), None, "jpeg", 85)
        with self._lock:
            return self._cache.setdefault(model.key, data)

    def response(self, name: str) -> flask.Response:
        # An hour: a redeploy may swap a style's model under the same name.
        return flask.Response(
            self.jpeg(name),
            mimetype="image/jpeg",
            headers={"Cache-Control": "public, max-age=3600"},
        )
