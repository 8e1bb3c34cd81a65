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
STYLE_IMAGE = "style_image"  # the painting to paint like (issue #31), a file field or JSON key
_STYLE_IMAGE_HOW = (
    "Send the painting as the multipart file field style_image (curl -F image=@photo.jpg "
    '-F style_image=@painting.jpg URL) or base64 in JSON\'s "style_image".'
)


@dataclass(frozen=True)
class Upload:
    data: bytes
    fields: dict[str, Any]  # option name -> value, not yet validated (options.parse_options)
    as_json: bool  # the answer is JSON (the request was), else the image or video bytes
    kind: str = "image"  # or "video"
    style_image: bytes | None = None  # a painting to paint like, instead of a named style


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
        files = [name for name, _ in request.files.items(multi=True)]
        if len(files) - files.count(STYLE_IMAGE) > 1 or files.count(STYLE_IMAGE) > 1:
            raise invalid_parameter(
                "Send one file in the field 'image' or 'video', and at most one in "
                f"'{STYLE_IMAGE}'."
            )
        fields.update(request.form.to_dict())
        style_image = request.files[STYLE_IMAGE].read() if STYLE_IMAGE in request.files else None
        if style_image is not None and not style_image:
            raise ApiError(
                400, "invalid_image", f"The style_image file is empty. {_STYLE_IMAGE_HOW}"
            )
        return _upload(request.files[kind].read(), fields, False, kind, style_image)
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
        style_image = body.pop(STYLE_IMAGE, None)
        fields.update(body)
        return _upload(
            decode_base64(media, kind),
            fields,
            True,
            kind,
            None if style_image is None else decode_base64(style_image, STYLE_IMAGE, "image"),
        )
    if STYLE_IMAGE in fields:  # a query parameter: a raw body holds one file
        raise invalid_parameter(f"style_image must be a file, not text. {_STYLE_IMAGE_HOW}")
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


def _upload(
    data: bytes, fields: dict[str, Any], as_json: bool, kind: str, style_image: bytes | None
) -> Upload:
    if STYLE_IMAGE in fields:  # a form's text field
        raise invalid_parameter(f"style_image must be a file, not text. {_STYLE_IMAGE_HOW}")
    return Upload(data, fields, as_json, kind, style_image)


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


def decode_base64(value: object, kind: str = "image", error: str | None = None) -> bytes:
    """The bytes of JSON's base64 `kind`; refusals are 400 `invalid_KIND` (or `invalid_ERROR`)."""
    code = f"invalid_{error or kind}"
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
            code,
            f'"{kind}" is not valid base64. Encode the file with base64 -w0.',
        ) from None
    if not data:
        raise ApiError(400, code, f'"{kind}" is empty. Put the base64-encoded file in "{kind}".')
    return data
