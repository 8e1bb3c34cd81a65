"""The WSGI app gunicorn serves (gunicorn.conf.py): functions-framework's app for the function
FUNCTION_TARGET (default `stylize`) in FUNCTION_SOURCE (default this folder's main.py), the same
app the `functions-framework` command builds before it starts gunicorn with its own settings."""

from __future__ import annotations

import os
from pathlib import Path

import functions_framework

HERE = Path(__file__).resolve().parent

app = functions_framework.create_app(
    os.environ.get("FUNCTION_TARGET") or "stylize",
    os.environ.get("FUNCTION_SOURCE") or str(HERE / "main.py"),
)
