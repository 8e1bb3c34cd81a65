"""A model file's ONNX metadata_props, read straight from the protobuf wire format.

Why a reader of our own: /styles and the start-up checks need every model's metadata, and with
lazy sessions nothing else needs the files at start. Measured on a 2-core CPU (12 models:
6 johnson fp16 of 3.4 MB, 6 fast fp32 of 1.7 MB): an ORT session costs 34 ms (johnson) / 16 ms
(fast), and 34 / 17 ms with graph optimizations off, since it still parses and resolves the
whole graph: 0.3 s for all 12, the cost lazy sessions avoid. The `onnx` package reads them in
0.5 ms each but takes 60-90 ms to import, on every cold start, and is not a runtime dependency.
This reader takes ~0.1 ms per model: metadata_props is a top-level field of ModelProto, and the
graph, which is nearly all of the file, is skipped by its length.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

_MODEL_GRAPH = 7  # ModelProto.graph
_MODEL_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto
_ENTRY_KEY, _ENTRY_VALUE = 1, 2  # StringStringEntryProto.key, .value
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # protobuf wire types


def _varint(f: BinaryIO) -> int | None:
    """The next base-128 varint, or None at the very end of the message."""
    value = shift = 0
    while byte := f.read(1):
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
    if shift:
        raise ValueError("truncated varint")
    return None


def _fields(f: BinaryIO, size: int, keep: Iterable[int]) -> Iterator[tuple[int, bytes | None]]:
    """(field number, payload) for each field of the message in `f`, which ends at `size`; the
    payload of a length-delimited field in `keep` is read, every other field is skipped."""
    keep = set(keep)
    while (key := _varint(f)) is not None:
        number, wire = key >> 3, key & 7
        payload = None
        if wire == _VARINT:
            if _varint(f) is None:
                raise ValueError("truncated varint")
        elif wire in (_I64, _I32):
            f.seek(8 if wire == _I64 else 4, os.SEEK_CUR)
        elif wire == _LEN:
            length = _varint(f)
            if length is None or f.tell() + length > size:
                raise ValueError(f"field {number} runs past the end of the file")
            if number in keep:
                payload = f.read(length)
            else:
                f.seek(length, os.SEEK_CUR)
        else:
            raise ValueError(f"field {number} has wire type {wire}, which ONNX never writes")
        if f.tell() > size:
            raise ValueError("the file ends inside a field")
        yield number, payload


def _entry(data: bytes) -> tuple[str, str]:
    with io.BytesIO(data) as f:
        found = dict(_fields(f, len(data), (_ENTRY_KEY, _ENTRY_VALUE)))
    return (found.get(_ENTRY_KEY) or b"").decode(), (found.get(_ENTRY_VALUE) or b"").decode()


def read_metadata(path: Path) -> dict[str, str]:
    """A model file's metadata_props, read without onnx or onnxruntime."""
    props: dict[str, str] = {}
    has_graph = False
    with path.open("rb") as f:
        for number, payload in _fields(f, path.stat().st_size, (_MODEL_METADATA_PROPS,)):
            has_graph |= number == _MODEL_GRAPH
            if number == _MODEL_METADATA_PROPS and payload is not None:
                key, value = _entry(payload)
                props[key] = value
    if not has_graph:
        raise ValueError("no graph in it")
    return props
