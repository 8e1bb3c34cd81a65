"""A small client for the styleserve HTTP API: multipart uploads, bearer tokens and retries.

from styleclient import StyleClient
client = StyleClient("https://styleserve-xyz.a.run.app", token=TOKEN)
jpeg = client.stylize("photo.jpg", style="starry_night", strength=0.8)
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

# The API's request options (function/stylefn/http/options.py FIELDS; tests/test_client.py keeps
# them equal).
OPTIONS = (
    "style",
    "arch",
    "strength",
    "stroke_scale",
    "preserve_color",
    "max_size",
    "format",
    "quality",
)
# 429: Cloud Run has no instance free yet; 503: every inference slot stayed busy (the API's
# `overloaded`) or an instance is still starting. Both are worth waiting for; other errors are not.
RETRY_STATUSES = frozenset({429, 503})


class StyleServeError(Exception):
    """An error answer: the API's stable `code` and its `message`, which says how to fix it."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def gcloud_identity_token() -> str:
    """`gcloud auth print-identity-token`: what Cloud Run wants for authenticated services."""
    try:
        result = subprocess.run(
            ["gcloud", "auth", "print-identity-token"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise RuntimeError(
            "gcloud is not installed; pass --token, or install the Google Cloud CLI"
        ) from None
    if result.returncode != 0 or not result.stdout.strip():
        detail = result.stderr.strip().splitlines()[-1:] or ["no token printed"]
        raise RuntimeError(f"gcloud auth print-identity-token failed: {detail[0]}")
    return result.stdout.strip()


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date (RFC 9110), parsed by
    urllib3 (requests' own transport); None when absent or malformed (then backoff applies)."""
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value))
    except InvalidHeader:
        return None


def _error_from(response: requests.Response) -> StyleServeError:
    request_id = response.headers.get("X-Request-Id")
    try:
        error = response.json()["error"]
        return StyleServeError(response.status_code, error["code"], error["message"], request_id)
    except (ValueError, KeyError, TypeError):
        pass
    # Not the API's JSON: Cloud Run's front end (401/403 without a valid token, 429, 5xx pages).
    hints = {
        401: "The service needs an identity token: --token, --gcloud-token or STYLESERVE_TOKEN.",
        403: "The token was refused: its account needs roles/run.invoker on the service.",
    }
    text = " ".join(response.text.split())[:200] or response.reason or "no details"
    message = hints.get(response.status_code, text)
    return StyleServeError(
        response.status_code, f"http_{response.status_code}", message, request_id
    )


class StyleClient:
    """The API at `url`. Retries 429/503 (honouring Retry-After) and connection failures with
    capped exponential backoff and full jitter, at most `retries` times per call."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout_s: float = 300.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_retry: Callable[[str, float], None] | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_retry = on_retry  # (reason, delay in seconds): lets a CLI say why it waits
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def styles(self) -> dict:
        """`GET /styles`: {"default": name, "styles": [{"name", "title", "artist", ...}]}."""
        return self._request("GET", "/styles").json()

    def health(self) -> dict:
        return self._request("GET", "/healthz").json()

    def stylize(self, image: str | Path | bytes, **options: object) -> bytes:
        """The stylized image's bytes. `image` is a path or the file's bytes; options are the
        API's (style, arch, strength, stroke_scale, preserve_color, max_size, format, quality); None means
        the server's default. `style` is a name, or a mix of one network's styles:
        "starry_night:0.6,the_scream:0.4" or {"starry_night": 0.6, "the_scream": 0.4}."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; use {', '.join(OPTIONS)}")
        if isinstance(image, (str, Path)):
            name, data = Path(image).name, Path(image).read_bytes()
        else:
            name, data = "image", bytes(image)
        fields = {k: _form_value(v) for k, v in options.items() if v is not None}
        response = self._request(
            "POST", "/", files={"image": (name, data, "application/octet-stream")}, data=fields
        )
        return response.content

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(
                    method, self.url + path, timeout=self.timeout_s, **kwargs
                )
            except requests.ConnectionError as e:  # refused, reset, DNS, connect timeout
                if last:
                    raise
                self._wait(attempt, None, f"connection failed ({type(e).__name__})")
                continue
            if response.ok:
                return response
            if response.status_code not in RETRY_STATUSES or last:
                raise _error_from(response)
            error = _error_from(response)
            self._wait(attempt, retry_after_s(response.headers.get("Retry-After")), str(error))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _wait(self, attempt: int, retry_after: float | None, reason: str) -> None:
        if retry_after is None:
            # Full jitter (AWS's "exponential backoff and jitter"): clients that failed together
            # spread out instead of coming back in lockstep.
            delay = random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
        else:
            delay = min(retry_after, self.max_backoff_s)
        if self.on_retry:
            self.on_retry(reason, delay)
        time.sleep(delay)


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a style mix, {name: weight}: the API's NAME:WEIGHT,...
        return ",".join(f"{name}:{weight}" for name, weight in value.items())
    return str(value)
