"""Which handler answers a request: werkzeug's URL map, built once, and the API's 404 and 405
(with the Allow header) for what it does not match. OPTIONS is answered for every endpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import flask
from errors import ApiError, not_found
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

NOT_FOUND_HINT = "Use POST / (or /stylize), GET /styles, GET /healthz."

# Endpoint names are the keys of main.HANDLERS. A GET rule also answers HEAD (werkzeug adds it).
URL_MAP = Map(
    [
        Rule("/", methods=["GET"], endpoint="page"),  # the web page; POST / stays the API
        Rule("/", methods=["POST"], endpoint="stylize"),
        Rule("/stylize", methods=["POST"], endpoint="stylize"),
        Rule("/styles", methods=["GET"], endpoint="styles"),
        Rule("/healthz", methods=["GET"], endpoint="health"),
        Rule("/styles/<name>/thumbnail.jpg", methods=["GET"], endpoint="thumbnail"),
        Rule("/styles/<name>/painting.jpg", methods=["GET"], endpoint="painting"),
    ],
    strict_slashes=False,  # a trailing slash is stripped before matching, never redirected
    merge_slashes=False,  # nor is `//`: a redirect would be an HTML answer, not the API's
)


@dataclass(frozen=True)
class Route:
    endpoint: str | None  # None: an OPTIONS request, answered with `allow` alone
    args: dict[str, str] = field(default_factory=dict)
    allow: str = ""


def route(request: flask.Request) -> Route:
    """The endpoint and its URL arguments; raises the API's not_found or method_not_allowed."""
    path = request.path.rstrip("/") or "/"
    adapter = URL_MAP.bind("localhost")  # the host plays no part in matching
    try:
        endpoint, args = adapter.match(path, method=request.method)
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
    return Route(str(endpoint), dict(args))
