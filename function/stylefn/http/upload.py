"""What a stylize request sent: the photo or video bytes and the option fields, from any of the
three request kinds (multipart, JSON with base64, a raw body with options in the query)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from stylefn.http.errors import ApiError, invalid_parameter
from stylefn.video.probe import signature

RAW_IMAGE_TYPES = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
    "image/bmp", "image/x-ms-bmp", "image/tiff", "application/octet-stream",
}  # fmt: skip
RAW_VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"}
MEDIA = ("image", "video")  # the file field, or JSON key, that carries each kind


@dataclass(frozen=True)
class Upload:
    data: bytes
    fields: dict[str, Any]  # option name -> value, not yet validated (options.parse_options)
    as_json: bool  # the answer is JSON (the request was), else the image or video bytes
    kind: str = "image"  # or "video"


def read_upload(request: flask.Request, max_request_bytes: int) -> Upload:
    if request.content_length is not None and request.content_length > max_request_bytes:
        raise RequestEntityTooLarge()  # before reading a byte of it
    fields: dict[str, Any] = dict(request.args.to_dict())
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        kind = next((k for k in MEDIA if k in request.files), None)
        if kind is None:
            raise invalid_parameter(
                "Missing the file field 'image' (or 'video'). Send the photo as multipart: "
                "curl -F image=@photo.jpg URL"
            )
        if len(list(request.files.items(multi=True))) > 1:  # also two files both named image
            raise invalid_parameter("Send exactly one file, in the field 'image' or 'video'.")
        fields.update(request.form.to_dict())
        return Upload(request.files[kind].read(), fields, as_json=False, kind=kind)
    if mimetype == "application/json":
        try:
            body = json.loads(read_body(request, max_request_bytes))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, [[[[...]]]] past the limit
            body = None
        if not isinstance(body, dict):
            raise ApiError(
                400,
                "invalid_request",
                'The body is not a JSON object. Send {"image": "<base64>", "style": ...}.',
            )
        if "image" in body and "video" in body:
            raise invalid_parameter('Send "image" or "video", not both.')
        kind = "video" if "video" in body else "image"
        media = body.pop(kind, None)
        fields.update(body)
        return Upload(decode_base64(media, kind), fields, as_json=True, kind=kind)
    if mimetype in RAW_VIDEO_TYPES:
        return Upload(read_body(request, max_request_bytes), fields, as_json=False, kind="video")
    if mimetype == "application/octet-stream":
        data = read_body(request, max_request_bytes)
        kind = "image" if signature(data) is None else "video"  # a video by its first bytes
        return Upload(data, fields, as_json=False, kind=kind)
    if mimetype in RAW_IMAGE_TYPES or mimetype.startswith("image/"):
        if mimetype not in RAW_IMAGE_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {mimetype} is not supported. Send JPEG, PNG, WebP, GIF, BMP or TIFF.",
            )
        return Upload(read_body(request, max_request_bytes), fields, as_json=False)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {mimetype or '(none)'} is not accepted. Send multipart/form-data "
        "(curl -F image=@photo.jpg), application/json with a base64 'image', or the raw image "
        "with its type (curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg'); a video "
        "as video/mp4, video/quicktime or video/webm.",
    )


def read_body(request: flask.Request, max_request_bytes: int) -> bytes:
    """The whole body, refused (413) when over `max_request_bytes` even if no Content-Length
    announced it: a chunked body is read one byte past the limit to find out (werkzeug reads
    such a body up to max_content_length and stops, so a longer one came out silently cut)."""
    if request.content_length is not None:  # checked against the limit before reading
        return request.get_data()
    chunks: list[bytes] = []
    size = 0
    while size <= max_request_bytes:
        chunk = request.stream.read(max_request_bytes + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > max_request_bytes:
        raise RequestEntityTooLarge()
    return b"".join(chunks)


def decode_base64(value: object, kind: str = "image") -> bytes:
    if value is None:
        raise invalid_parameter(
            'Missing "image": put the photo, base64-encoded, in "image" (a video in "video").'
        )
    if not isinstance(value, str):
        raise invalid_parameter(f'"{kind}" must be a base64 string; got {type(value).__name__}.')
    if value.startswith("data:"):  # a data: URI, as browsers' FileReader produce
        value = value.partition(",")[2]
    text = "".join(value.split())  # `base64` wraps lines at 76 characters
    altchars = b"-_" if ("-" in text or "_" in text) else None  # URL-safe alphabet
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            f"invalid_{kind}",
            f'"{kind}" is not valid base64. Encode the file with base64 -w0.',
        ) from None
    if not data:
        raise ApiError(
            400, f"invalid_{kind}", f'"{kind}" is empty. Put the base64-encoded file in "{kind}".'
        )
    return data
