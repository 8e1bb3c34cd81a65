"""A cost bound on every decode, checked on the raw bytes before Pillow sees them: images whose
decoding costs far more than their size (a small progressive JPEG whose scans repeat a thousand
times, an RLE BMP that Pillow expands in pure Python) or that flood Pillow with objects
(millions of empty JPEG segments, GIF comment blocks or PNG chunks, thousands of TIFF tags, a
million TIFF strips, megabytes of JPEG fill bytes) are refused with ImageTooComplex (the API's
422 image_too_complex); a JPEG or PNG far too short for the pixels it declares is truncated,
and check_density refuses it with InvalidImage before its pixels are allocated. Pillow has no limit of its own on any
of these.

Each check walks only the file's structure (segment headers, chunk lengths, block sizes) and
stops at its limit, so the check itself is bounded: a few milliseconds for a 20 MB file. Limits
are far above what cameras, phones and editors write (measured numbers in the comments).
Formats and damage this module does not recognise pass: the decoder judges them.
"""

from __future__ import annotations

import math
import re
import struct

from stylefn.imaging.errors import ImageTooComplex, InvalidImage

# JPEG: libjpeg's progressive script writes 10 scans (6 for greyscale), mozjpeg and Photoshop
# fewer; each scan walks every 8x8 block of its components again. Measured on this project's
# 2-core CPU: a repeated luminance scan of a 16 MP image costs 8 ms, whatever its (tiny) size,
# so a scan bomb of 1,000 repeats is 110 kB and 8 s. Bounded by count and by scans x pixels
# (600 M: e.g. 15 scans of a 40 MP photo, 100 of a 6 MP one; ~1.5 s at that rate), never below
# what standard progressive files have, whatever the size (MAX_PIXELS bounds that).
MAX_JPEG_SCANS = 100
MAX_JPEG_SCAN_PIXELS = 600_000_000
MIN_JPEG_SCANS = 12
# Segments up to the image data: a phone JPEG has ~10 (APP0/1/2, DQT, DHT, SOF), a progressive
# one ~30 (a DHT before each scan). Pillow keeps an object per segment (~130 bytes each for
# empty ones: 20 MB of them cost 662 MiB).
MAX_JPEG_SEGMENTS = 1000
# Fill bytes (0xFF padding, allowed before any marker) and stray bytes between segments: Pillow
# skips them one at a time in Python (measured: 20 MB of fill cost 39-49 s of CPU, after the
# first marker or before the last). Encoders write none or a few.
MAX_JPEG_FILL = 65_536  # ~0.15 s at that rate
# Every 8x8 luminance block costs at least one bit in the first scan (its DC code), so a JPEG
# holds at least pixels / 512 bytes. A shorter one is truncated with an end marker added, and
# libjpeg paints the missing blocks grey: a 2 kB file declaring 6000x6000 decoded to 36 MP
# (+344 MiB). Half that floor leaves a margin for restart markers and odd subsampling.
JPEG_PIXELS_PER_BYTE = 1024
# PNG: deflate compresses at most 1032:1, so a PNG holds at least its raw rows / 1032 bytes.
DEFLATE_MAX_RATIO = 1032
# PNG: encoders write 8-64 kB IDAT chunks (a 20 MB PNG: ~2,500 chunks); Pillow spends ~2 us a
# chunk in Python. The bound grows with the file so rows-per-chunk encoders still pass.
PNG_CHUNKS_BASE = 4096
PNG_BYTES_PER_CHUNK = 1024
# GIF: sub-blocks of extensions before the first frame (application, comment, XMP data; an
# XMP packet's "magic trailer" alone is 258). Pillow keeps each comment block as an object.
MAX_GIF_BLOCKS = 10_000
# TIFF: a camera or scanner writes 20-80 tags; Pillow warns once per broken tag.
MAX_TIFF_TAGS = 1000
# Strips or tiles of the first image: Pillow makes a Python object for each (measured: 1 M
# one-row strips, 8 MB of offsets, took 4.7 s and 375 MB). A 40 MP scan one row a strip has
# up to 40,000; tiles are usually 256 px a side.
MAX_TIFF_STRIPS = 65536
_TIFF_OFFSETS = (273, 324)  # StripOffsets, TileOffsets
# BMP RLE4/RLE8: Pillow's decoder is Python, ~90 ns a pixel under the GIL (a 26 kB RLE8 file of
# 40 MP: 3.5 s); plain BMPs decode in C and are not limited here.
MAX_RLE_BMP_PIXELS = 4_194_304  # 2048 x 2048, ~0.4 s

# A marker that ends a JPEG scan's entropy-coded data: 0xFF followed by neither a stuffed zero,
# a restart marker (RST0-7) nor a fill byte.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = frozenset(
    (*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0))
)


def check_structure(data: bytes) -> None:
    """Raise ImageTooComplex when decoding `data` would cost out of proportion to its
    size; anything else (other formats, damage) is left to the decoder."""
    if data.startswith(b"\xff\xd8"):
        _check_jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _check_gif(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff(data)
    elif data.startswith(b"BM"):
        _check_bmp(data)


def _check_jpeg(data: bytes) -> None:
    pos, segments, scans, pixels, fill = 2, 0, 0, 0, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] in (0x00, 0xFF):  # stray bytes or fill: skip on
            found = _JPEG_MARKER.search(data, pos + 1)
            if found is None:
                return
            fill = _check_fill(fill + found.start() - pos)
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xD9:  # EOI: the first image ends (an MPO's others are never decoded)
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # RSTn, TEM: no length
            pos += 2
            continue
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageTooComplex(
                f"The JPEG has more than {MAX_JPEG_SEGMENTS:,} segments (metadata, tables) "
                "before its end. Strip its metadata (e.g. exiftool -all= photo.jpg) or re-save "
                "it, and try again."
            )
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            pixels = width * height
        if marker != 0xDA:
            pos += 2 + length
            continue
        scans += 1
        limit = min(MAX_JPEG_SCANS, max(MIN_JPEG_SCANS, MAX_JPEG_SCAN_PIXELS // max(pixels, 1)))
        if scans > limit:
            raise ImageTooComplex(
                f"The JPEG has more than {limit:,} scans for its {pixels:,} pixels; each scan "
                "is decoded over the whole image again. Re-save it as a baseline "
                "(non-progressive) JPEG, or as a standard progressive one, and try again."
            )
        found = _JPEG_MARKER.search(data, pos + 2 + length)  # past the entropy-coded data
        if found is None:
            return
        pos = found.start()
        if data[pos - 1] == 0xFF:  # fill before the marker (rare: only then copy to count it)
            fill = _check_fill(fill + pos - len(data[:pos].rstrip(b"\xff")))


def _check_fill(fill: int) -> int:
    if fill > MAX_JPEG_FILL:
        raise ImageTooComplex(
            f"The JPEG has more than {MAX_JPEG_FILL:,} bytes of padding (0xFF fill) or stray "
            "bytes between its segments. Re-save it (any editor writes none) and try again."
        )
    return fill


def check_density(data: bytes, image_format: str, width: int, height: int) -> None:
    """Raise InvalidImage when `data` is too short to hold the pixels its header declares: a
    truncated file, refused before the decoder allocates them. Formats without a floor pass."""
    if image_format in ("JPEG", "MPO"):
        floor = width * height // JPEG_PIXELS_PER_BYTE
    elif image_format == "PNG":  # the rows of a 1-bit image, at deflate's best ratio
        floor = height * (1 + math.ceil(width / 8)) // DEFLATE_MAX_RATIO
    else:
        return
    if len(data) < floor:
        raise InvalidImage(
            f"The {image_format} declares {width}x{height} pixels but is only {len(data):,} "
            f"bytes, fewer than any complete one of that size ({floor:,}): it is truncated. "
            "Send the complete file."
        )


def _check_png(data: bytes) -> None:
    limit = PNG_CHUNKS_BASE + len(data) // PNG_BYTES_PER_CHUNK
    pos, chunks = 8, 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks += 1
        if chunks > limit:
            raise ImageTooComplex(
                f"The PNG has more than {limit:,} chunks for its {len(data):,} bytes. Re-save "
                "it (any editor writes a few large chunks) and try again."
            )
        if kind == b"IEND":
            return
        pos += 12 + length


def _check_gif(data: bytes) -> None:
    if len(data) < 13:
        return
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)  # past the global palette
    blocks = 0
    while pos < len(data) and data[pos] == 0x21:  # extensions until the first image (0x2C)
        pos += 2  # introducer, label
        while pos < len(data) and data[pos]:
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise ImageTooComplex(
                    f"The GIF has more than {MAX_GIF_BLOCKS:,} extension blocks (comments, "
                    "application data) before its first frame. Re-save it without metadata "
                    "and try again."
                )
            pos += data[pos] + 1
        pos += 1  # the block terminator


def _check_tiff(data: bytes) -> None:
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")  # BigTIFF: 8-byte offsets and counts
    # (directory offset, tag count, entry layout: tag, type, count, value)
    header, count, entry = ("Q", "Q", "HHQQ") if big else ("I", "H", "HHII")
    try:
        (offset,) = struct.unpack_from(order + header, data, 8 if big else 4)
        (tags,) = struct.unpack_from(order + count, data, offset)
    except struct.error:
        return  # truncated: the decoder refuses it
    if tags > MAX_TIFF_TAGS:
        raise ImageTooComplex(
            f"The TIFF's first directory has {tags:,} tags, over the limit of {MAX_TIFF_TAGS:,}. "
            "Re-save it (or convert it to PNG) and try again."
        )
    first, size = offset + struct.calcsize(order + count), struct.calcsize(order + entry)
    for i in range(tags):
        try:
            tag, _, values, _ = struct.unpack_from(order + entry, data, first + i * size)
        except struct.error:
            return
        if tag in _TIFF_OFFSETS and values > MAX_TIFF_STRIPS:
            raise ImageTooComplex(
                f"The TIFF's first image is in {values:,} strips or tiles, over the limit of "
                f"{MAX_TIFF_STRIPS:,}. Re-save it with larger strips (or convert it to PNG) and "
                "try again."
            )


def _check_bmp(data: bytes) -> None:
    if len(data) < 34:
        return
    (header_size,) = struct.unpack_from("<I", data, 14)
    if header_size < 40:  # OS/2 and Windows 2 headers have no compression field
        return
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    pixels = abs(width * height)
    if compression in (1, 2) and pixels > MAX_RLE_BMP_PIXELS:  # BI_RLE8, BI_RLE4
        raise ImageTooComplex(
            f"The BMP is RLE-compressed and {abs(width)}x{abs(height)} pixels; RLE BMPs are "
            f"decoded slowly and limited to {MAX_RLE_BMP_PIXELS:,} pixels. Convert it to PNG "
            "and try again."
        )
