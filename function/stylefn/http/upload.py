"""What a stylize request sent: the image bytes and the option fields, from any of the three
request kinds (multipart, JSON with base64, a raw image body with options in the query)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import flask
from werkzeug.exceptions import RequestEntityTooLarge

from stylefn.http.errors import ApiError, invalid_image, invalid_parameter

RAW_IMAGE_TYPES = {
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif",
    "image/bmp", "image/x-ms-bmp", "image/tiff", "application/octet-stream",
}  # fmt: skip


@dataclass(frozen=True)
class Upload:
    image: bytes
    fields: dict[str, Any]  # option name -> value, not yet validated (options.parse_options)
    as_json: bool  # the answer is JSON (the request was), else the image bytes


def read_upload(request: flask.Request, max_request_bytes: int) -> Upload:
    if request.content_length is not None and request.content_length > max_request_bytes:
        raise RequestEntityTooLarge()  # before reading a byte of it
    fields: dict[str, Any] = dict(request.args.to_dict())
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise invalid_parameter(
                "Missing the file field 'image'. Send the photo as multipart: "
                "curl -F image=@photo.jpg URL"
            )
        if len(list(request.files.items(multi=True))) > 1:  # also two files both named image
            raise invalid_parameter("Send exactly one file, in the field 'image'.")
        fields.update(request.form.to_dict())
        return Upload(upload.read(), fields, as_json=False)
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
        image = body.pop("image", None)
        fields.update(body)
        return Upload(decode_base64(image), fields, as_json=True)
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
        "with its type (curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg').",
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


def decode_base64(value: object) -> bytes:
    if value is None:
        raise invalid_parameter('Missing "image": put the photo, base64-encoded, in "image".')
    if not isinstance(value, str):
        raise invalid_parameter(f'"image" must be a base64 string; got {type(value).__name__}.')
    if value.startswith("data:"):  # a data: URI, as browsers' FileReader produce
        value = value.partition(",")[2]
    text = "".join(value.split())  # `base64` wraps lines at 76 characters
    altchars = b"-_" if ("-" in text or "_" in text) else None  # URL-safe alphabet
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_image(
            '"image" is not valid base64. Encode the file with base64 -w0.'
        ) from None
    if not data:
        raise invalid_image('"image" is empty. Put the base64-encoded photo in "image".')
    return data
