"""Hostile image files for tests and benchmarks/attack.py: small uploads whose decoding costs far
more than their size suggests (the faults of issue #15), built with Pillow and a few bytes of
structure by hand, so every file is a real, well-formed-looking image."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

from devtools.images import make_photo


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every marker segment of a JPEG up to EOI, a scan's entropy-coded data
    included in its SOS segment. Enough structure to rearrange Pillow's own output."""
    segments, pos = [], 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"no marker at {pos}"
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI
            segments.append((pos, pos + 2))
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:  # SOS: the entropy-coded data runs to the next marker but RSTn
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        segments.append((pos, end))
        pos = end
    return segments


def progressive_scan_bomb(repeats: int = 1000, side: int = 4000) -> bytes:
    """A progressive JPEG of one flat side x side image whose last scan (an AC refinement of
    the luminance, with its Huffman table) repeats `repeats` times. On a flat image that scan
    is a few bytes of end-of-band runs, but libjpeg walks every 8x8 block for each repeat (a
    warning, not an error): ~100 kB and seconds of decoding at the defaults."""
    img = Image.new("RGB", (side, side), (120, 90, 60))
    data = _encode(img, "JPEG", quality=75, progressive=True)
    segments = jpeg_segments(data)
    last = max(i for i, (s, _) in enumerate(segments) if data[s + 1] == 0xDA)
    start = segments[last - 1][0] if data[segments[last - 1][0] + 1] == 0xC4 else segments[last][0]
    scan = data[start : segments[last][1]]
    return data[: segments[-1][0]] + scan * repeats + b"\xff\xd9"


def jpeg_scan_count(data: bytes) -> int:
    return sum(1 for s, _ in jpeg_segments(data) if data[s + 1] == 0xDA)


def jpeg_app_flood(total_bytes: int) -> bytes:
    """A small JPEG with empty APP1 segments (4 bytes each) after SOI, `total_bytes` of them:
    Pillow keeps an object per segment, hundreds of bytes each."""
    jpeg = _encode(make_photo(24, 16, 3), "JPEG", quality=90)
    return jpeg[:2] + b"\xff\xe1\x00\x02" * (total_bytes // 4) + jpeg[2:]


def gif_comment_flood(total_bytes: int) -> bytes:
    """A small GIF whose first frame is preceded by one-byte comment extensions (5 bytes each),
    `total_bytes` of them."""
    gif = _encode(make_photo(24, 16, 3).quantize(16), "GIF")
    flags = gif[10]
    head_end = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:head_end] + b"\x21\xfe\x01C\x00" * (total_bytes // 5) + gif[head_end:]


def png_chunk_flood(chunks: int) -> bytes:
    """A small PNG with `chunks` empty private ancillary chunks (12 bytes each) before IDAT."""
    png = _encode(make_photo(24, 16, 3), "PNG")
    empty = struct.pack(">I", 0) + b"prIv" + struct.pack(">I", zlib.crc32(b"prIv"))
    return png[:33] + empty * chunks + png[33:]


def bmp_rle8(width: int, height: int) -> bytes:
    """An RLE8 BMP of one pixel and an end-of-line escape a row: 4 bytes a row, whatever the
    width. Pillow decodes RLE in Python and pads each line a byte at a time, so the cost is the
    pixel count (width x height) in Python steps, under the GIL."""
    palette = b"".join(struct.pack("<BBBB", i, i, i, 0) for i in range(256))
    pixels = b"\x01\x80\x00\x00" * height + b"\x00\x01"  # a pixel + EOL a row, end of bitmap
    offset = 14 + 40 + len(palette)
    file_header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return file_header + info + palette + pixels


def tiff_tag_flood(tags: int) -> bytes:
    """A small TIFF whose first IFD holds `tags` extra private tags (ASCII, a few bytes each)."""
    from PIL import TiffImagePlugin

    info = TiffImagePlugin.ImageFileDirectory_v2()
    for i in range(tags):
        info[40000 + i] = f"t{i}"
        info.tagtype[40000 + i] = 2  # ASCII
    return _encode(make_photo(24, 16, 3), "TIFF", tiffinfo=info)


def tiff_broken_tags(tags: int) -> bytes:
    """A 16x16 greyscale TIFF with `tags` private tags each claiming more data than the file has:
    Pillow warns once per tag, each with its own text (2 stderr lines each, unfiltered)."""
    width = height = 16
    pixels = bytes(range(256))
    entries = [
        (256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
        (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, height),
        (279, 4, 1, len(pixels)),
        *[(40000 + i, 4, 1 << 20, 8) for i in range(tags)],  # 4 MiB each: more than the file
    ]  # fmt: skip
    ifd_offset = 8 + len(pixels)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in sorted(entries):
        packed = (
            struct.pack("<H", value) + b"\0\0"
            if kind == 3 and count == 1
            else struct.pack("<I", value)
        )
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\0" + struct.pack("<I", ifd_offset) + pixels + ifd + b"\0\0\0\0"


def tiff_strip_flood(rows: int, width: int = 16) -> bytes:
    """A width x `rows` greyscale TIFF stored one row a strip, every strip the same few bytes:
    8 bytes of offsets and counts a row, and Pillow builds a Python object per strip (1 M rows,
    8 MB: 4.7 s and 375 MB)."""
    pixels_at, pixels = 8, bytes(width)
    offsets_at = pixels_at + len(pixels)
    counts_at = offsets_at + 4 * rows
    ifd_at = counts_at + 4 * rows
    entries = [
        (256, 4, 1, width), (257, 4, 1, rows), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, rows, offsets_at), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, rows, counts_at),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    strips = struct.pack(f"<{rows}I", *[pixels_at] * rows) + struct.pack(
        f"<{rows}I", *[width] * rows
    )
    return b"II*\0" + struct.pack("<I", ifd_at) + pixels + strips + ifd + b"\0\0\0\0"


def flat_png(width: int, height: int) -> bytes:
    """A flat-colour PNG: width x height pixels in a few kB (a memory test, not a bomb)."""
    return _encode(Image.new("RGB", (width, height), (120, 80, 200)), "PNG", optimize=True)
