"""The browser page (GET /) and the pictures its style cards show: each style's painting, as
embedded in its model (catalog.Model.painting), and its thumbnail, the sample photo in that
style (styles/thumbnails.py). The page is a static file, read once per process."""

from __future__ import annotations

import flask

from stylefn.http.context import Context
from stylefn.http.errors import not_found
from stylefn.ops.config import FUNCTION_DIR
from stylefn.styles.catalog import find_style

# Everything the page needs is inline or from this origin; the policy makes a stray CDN link
# fail in the browser (and in tests) instead of silently working only while online. A video,
# the one sent and the one painted, plays from a blob: URL of the page's own.
PAGE_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; media-src blob:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
}
# An hour: a redeploy may swap a style's model under the same name.
PICTURE_HEADERS = {"Cache-Control": "public, max-age=3600"}

INDEX_HTML = (FUNCTION_DIR / "static" / "index.html").read_bytes()


def page(_ctx: Context, _request: flask.Request) -> flask.Response:
    """The single-page UI."""
    return flask.Response(
        INDEX_HTML,
        content_type="text/html; charset=utf-8",
        headers=PAGE_HEADERS,
    )


def painting(ctx: Context, request: flask.Request, name: str) -> flask.Response:
    """The style's painting, as embedded in its model; unknown style: 404 unknown_style."""
    found = find_style(ctx.instance().registry.styles, name).painting
    if found is None:
        raise not_found(
            f"Style {name!r} has no painting thumbnail in its model (GET /styles says "
            "painting_url: null); add one with python -m export.add_painting MODEL.onnx "
            "--painting STYLE_IMAGE"
        )
    # After the hour, the ETag (the bytes' hash) makes revalidating a 304 while the painting
    # is unchanged.
    response = flask.Response(found.jpeg, mimetype="image/jpeg", headers=PICTURE_HEADERS)
    response.set_etag(found.etag)
    response.make_conditional(request)  # in place: a 304 without the body when the ETag matches
    return response


def thumbnail(ctx: Context, _request: flask.Request, name: str) -> flask.Response:
    """The sample photo in the style's default arch; unknown style: 404 unknown_style."""
    jpeg = ctx.instance().thumbnails.jpeg(name)
    return flask.Response(jpeg, mimetype="image/jpeg", headers=PICTURE_HEADERS)
