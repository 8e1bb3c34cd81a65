"""Every route of the API, declared here and only here: werkzeug's URL map from each path and
method to its handler, and the API's 404 and 405 (with the Allow header) for what it does not
match. OPTIONS is answered for every path that exists. A handler is called with the Context,
the request and the path's arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from stylefn.http import info, pages
from stylefn.http.error_map import NOT_FOUND_HINT
from stylefn.http.errors import ApiError, not_found
from stylefn.http.stylize import stylize
from stylefn.http.stylized import Stylized

# What a handler returns: a stylized image or video, a JSON object, or a finished response.
Answer = Stylized | dict[str, Any] | flask.Response
Handler = Callable[..., Answer]

# A GET rule also answers HEAD (werkzeug adds it).
URL_MAP = Map(
    [
        Rule("/", methods=["GET"], endpoint=pages.page),  # the web page; POST / stays the API
        Rule("/", methods=["POST"], endpoint=stylize),
        Rule("/stylize", methods=["POST"], endpoint=stylize),
        Rule("/styles", methods=["GET"], endpoint=info.styles),
        Rule("/healthz", methods=["GET"], endpoint=info.health),
        Rule("/styles/<name>/thumbnail.jpg", methods=["GET"], endpoint=pages.thumbnail),
        Rule("/styles/<name>/painting.jpg", methods=["GET"], endpoint=pages.painting),
    ],
    strict_slashes=False,  # a trailing slash is stripped before matching, never redirected
    merge_slashes=False,  # nor is `//`: a redirect would be an HTML answer, not the API's
)


@dataclass(frozen=True)
class Route:
    handler: Handler | None  # None: an OPTIONS request, answered with `allow` alone
    args: dict[str, str] = field(default_factory=dict)
    allow: str = ""


def route(request: flask.Request) -> Route:
    """The handler and its URL arguments; raises the API's not_found or method_not_allowed."""
    path = request.path.rstrip("/") or "/"
    adapter = URL_MAP.bind("localhost")  # the host plays no part in matching
    try:
        handler, args = adapter.match(path, method=request.method)
    except NotFound:
        raise not_found(f"No endpoint {path[:100]!r}. {NOT_FOUND_HINT}") from None
    except MethodNotAllowed as e:
        methods = set(e.valid_methods or ())
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        if request.method == "OPTIONS":
            return Route(None, allow=allow)
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {path}; use "
            f"{' or '.join(sorted(methods - {'HEAD'}))}.",
            headers={"Allow": allow},
        ) from None
    return Route(handler, dict(args))
