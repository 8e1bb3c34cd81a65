"""What a request handler may use besides the request (routes.py calls each with it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stylefn.instance import Instance
from stylefn.ops.config import Config


@dataclass(frozen=True)
class Context:
    config: Config
    # This process's instance, built on first use (main.instance: never before gunicorn's fork).
    instance: Callable[[], Instance]
