"""What imaging refuses. Each message tells the client how to fix it; the HTTP layer gives each
kind its status and stable code (http/error_map.py), so nothing here knows about HTTP."""

from __future__ import annotations


class ImagingError(Exception):
    """An image (or a requested output) this package cannot or will not process."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidImage(ImagingError):
    """Not a complete image in an accepted format: empty, unrecognised, truncated, corrupt."""


class ImageTooLarge(ImagingError):
    """More pixels than the limit (ours, or Pillow's decompression-bomb guard)."""


class ImageTooComplex(ImagingError):
    """Decoding would cost out of proportion to the file's size (checks.py)."""


class UnsupportedOutput(ImagingError):
    """The result cannot be written as asked: an unknown format, a quality outside 1..100, or
    a size the format cannot hold."""
