"""A small client for the styleserve HTTP API: multipart uploads, bearer tokens and retries.

from styleclient import StyleClient
client = StyleClient("https://styleserve-xyz.a.run.app", token=TOKEN)
jpeg = client.stylize("photo.jpg", style="starry_night", strength=0.8)
mp4 = client.stylize("clip.mov", style="starry_night")  # a video comes back as an MP4
own = client.stylize("photo.jpg", style_image="my_painting.jpg")  # any painting as the style
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
# A video that ran out of its deadline (minutes) would run out again: retrying it only repeats
# the wait. A photo's 503 deadline_exceeded is seconds of work and is still retried.
VIDEO_FINAL_CODES = frozenset({"deadline_exceeded"})
# A video's suffix -> the Content-Type it is sent with (the API's video types).
VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}
# The first bytes of a video without a telling name, as the API sniffs them: an ISO media box
# (MP4, MOV) or Matroska's EBML magic (MKV, WebM). HEIC and AVIF photos start with an ftyp box
# too; their brands say they are stills.
_VIDEO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_STILL_BRANDS = (b"avif", b"heic", b"heix", b"mif1")
_EBML = b"\x1a\x45\xdf\xa3"
SNIFF_BYTES = 64  # enough for the ftyp brand and a WebM header's DocType


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


def sniffed_video_type(head: bytes) -> str | None:
    """The video Content-Type a file's first bytes say, or None (a photo, or not a video)."""
    if head.startswith(_EBML):
        return "video/webm" if b"webm" in head[:SNIFF_BYTES] else "video/x-matroska"
    box, brand = head[4:8], head[8:12]
    if box not in _VIDEO_BOXES or (box == b"ftyp" and brand in _STILL_BRANDS):
        return None
    return "video/quicktime" if brand == b"qt  " else "video/mp4"


def video_type(name: str, data: bytes) -> str | None:
    """The Content-Type to send a video with, by its name's suffix, else by its first bytes
    (bytes come without a name); None for a photo."""
    return VIDEO_TYPES.get(Path(name).suffix.lower()) or sniffed_video_type(data[:SNIFF_BYTES])


def check_video_options(options: dict[str, object]) -> None:
    """A video always comes back as MP4 and has no JPEG quality: refused here, before minutes
    of upload, with the words the API would use."""
    fmt = options.get("format")
    if fmt is not None and str(fmt).strip().lower() != "mp4":
        raise ValueError(
            f"format must be mp4 for a video (it comes back as H.264 MP4); got {fmt!r}"
        )
    if options.get("quality") is not None:
        raise ValueError("quality applies to photos; leave it out for a video")


def check_style_image_options(options: dict[str, object], media_type: str | None) -> None:
    """A painting of one's own replaces the named style and its network, and works with photos
    only: refused here, before the upload, with the words the API would use."""
    if media_type is not None:
        raise ValueError("style_image works with photos; send a video with a style")
    if options.get("style") is not None:
        raise ValueError(
            "send style or style_image, not both: style names one of the service's paintings "
            "(styles()), style_image brings your own"
        )
    if options.get("arch") is not None:
        raise ValueError("arch applies to named styles; leave it out with style_image")


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
        video_timeout_s: float = 300.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        on_retry: Callable[[str, float], None] | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # A video is painted frame by frame: seconds to minutes (the API gives up after
        # VIDEO_DEADLINE_S, 240 s by default), so its wait is set apart from a photo's.
        self.video_timeout_s = video_timeout_s
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

    def stylize(
        self,
        image: str | Path | bytes,
        *,
        style_image: str | Path | bytes | None = None,
        **options: object,
    ) -> bytes:
        """The stylized image's bytes. `image` is a path or the file's bytes; options are the
        API's (style, arch, strength, stroke_scale, preserve_color, max_size, format, quality); None means
        the server's default. `style` is a name, or a mix of one network's styles:
        "starry_night:0.6,the_scream:0.4" or {"starry_night": 0.6, "the_scream": 0.4}.

        `style_image` (a path or bytes), instead of `style`: any painting, the photo painted like
        it by no network trained on it. Photos only, without `style` and `arch` (ValueError).

        A video (.mp4 .m4v .mov .webm .mkv, or bytes that start as one) comes back as an MP4
        with its sound, waited for up to `video_timeout_s`; `format` may only be "mp4" and
        `quality` is refused (ValueError)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise TypeError(f"unknown option(s) {unknown}; use {', '.join(OPTIONS)}")
        if isinstance(image, (str, Path)):
            name, data = Path(image).name, Path(image).read_bytes()
        else:
            name, data = "", bytes(image)
        fields = {k: _form_value(v) for k, v in options.items() if v is not None}
        media_type = video_type(name, data)
        if style_image is not None:
            check_style_image_options(options, media_type)
        if media_type is None:
            files = {"image": (name or "image", data, "application/octet-stream")}
            if style_image is not None:
                files["style_image"] = _file_part(style_image)
            return self._request("POST", "/", files=files, data=fields).content
        check_video_options(options)
        response = self._request(
            "POST",
            "/",
            files={"video": (name or "video", data, media_type)},
            data=fields,
            timeout_s=self.video_timeout_s,
            final_codes=VIDEO_FINAL_CODES,
        )
        return response.content

    def _request(
        self,
        method: str,
        path: str,
        *,
        timeout_s: float | None = None,
        final_codes: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> requests.Response:
        """`final_codes`: API error codes not retried even under a retried status."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(
                    method,
                    self.url + path,
                    timeout=self.timeout_s if timeout_s is None else timeout_s,
                    **kwargs,
                )
            except requests.ConnectionError as e:  # refused, reset, DNS, connect timeout
                if last:
                    raise
                self._wait(attempt, None, f"connection failed ({type(e).__name__})")
                continue
            if response.ok:
                return response
            error = _error_from(response)
            if response.status_code not in RETRY_STATUSES or last or error.code in final_codes:
                raise error
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


def _file_part(painting: str | Path | bytes) -> tuple[str, bytes, str]:
    """The painting's multipart part, from a path or bytes."""
    if isinstance(painting, (str, Path)):
        return Path(painting).name, Path(painting).read_bytes(), "application/octet-stream"
    return "style_image", bytes(painting), "application/octet-stream"


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a style mix, {name: weight}: the API's NAME:WEIGHT,...
        return ",".join(f"{name}:{weight}" for name, weight in value.items())
    return str(value)
