"""The style transfer HTTP function's entry point; the code is the `stylefn` package beside it.

    gunicorn --config function/gunicorn.conf.py                     # as the containers serve it
    functions-framework --target stylize --source function/main.py --port 8080

POST / (or /stylize) takes a photo as multipart (`image` file field), JSON (`image` base64) or
a raw `image/*` body and answers with it repainted; GET /styles lists the styles, GET /healthz
reports the provider. Every client mistake is a JSON error with a stable code
(stylefn/http/routes.py lists the routes, stylefn/http/error_map.py the errors).

functions-framework executes this file anew for each app it creates (tests create several), so
what depends on the environment (CONFIG, the per-process instance) lives here, not in the
package, which Python imports once.
"""

from __future__ import annotations

import os

import flask
import functions_framework
from werkzeug.exceptions import HTTPException

from stylefn.http.app import StyleFunction
from stylefn.instance import Instance, PerProcess
from stylefn.ops import logs, memory
from stylefn.ops.config import Config
from stylefn.styles.registry import check_setup

CONFIG = Config.from_env()
memory.limit_arenas()  # before any request thread exists (see ops/memory.py)
LOG = logs.configure()
try:  # misconfigurations fail the start, loudly, before the worker is forked
    check_setup(CONFIG.model_dir, CONFIG.require_gpu, CONFIG.default_style)
except RuntimeError as e:
    raise SystemExit(str(e)) from None


def _build_instance() -> Instance:
    """Reads every model's metadata and builds the default style's session; the other
    sessions are built on their first request (a cold start then costs one session, not one
    per model)."""
    built = Instance(CONFIG)
    registry = built.registry
    fields = {
        "provider": registry.provider,
        "styles": sorted(registry.styles),
        "models": sorted(registry.models),
        "default": registry.get(None).key,
    }
    LOG.info("ready", extra={"fields": fields})
    return built


_instances = PerProcess(_build_instance)


def instance() -> Instance:
    """This process's instance (see stylefn.instance.PerProcess)."""
    return _instances.get()


# Right after gunicorn forks the worker, build its instance in the background.
os.register_at_fork(after_in_child=lambda: _instances.load_in_background(LOG))

FUNCTION = StyleFunction(CONFIG, instance, LOG)


@functions_framework.errorhandler(HTTPException)
def _not_routed(e: HTTPException) -> flask.Response:
    return FUNCTION.not_routed(e)


@functions_framework.http
def stylize(request: flask.Request) -> flask.Response:
    """Entry point (`--target stylize`)."""
    return FUNCTION(request)
