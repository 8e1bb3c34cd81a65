"""GET /styles and GET /healthz: what this instance serves, from the metadata read at start (so
neither builds a session)."""

from __future__ import annotations

from typing import Any

import flask

from stylefn.http.context import Context


def styles(ctx: Context, _request: flask.Request) -> dict[str, Any]:
    """Each style once, with its archs."""
    registry = ctx.instance().registry
    listed = sorted(registry.styles.values(), key=lambda s: s.name)
    served = {arch for s in listed for arch in s.models}
    # The preferred arch only where some style has it: a folder of johnson-only styles on a CPU
    # must not advertise "fast".
    default_arch = registry.default_arch if registry.default_arch in served else min(served)
    return {
        "default": registry.default,
        "default_arch": default_arch,
        "styles": [s.describe(registry.default_arch) for s in listed],
    }


def health(ctx: Context, _request: flask.Request) -> dict[str, Any]:
    registry = ctx.instance().registry
    return {"status": "ok", "provider": registry.provider, "styles": len(registry.styles)}
