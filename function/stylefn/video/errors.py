"""What the video path refuses. Like imaging's, each message says how to fix it; the HTTP layer
gives each kind its status and code (http/error_map.py)."""

from __future__ import annotations

from stylefn.imaging.errors import ImagingError


class InvalidVideo(ImagingError):
    """Not a complete, readable clip: empty, unrecognised, truncated, corrupt, no picture."""


class VideoTooLarge(ImagingError):
    """Over a limit read from the header (or met while decoding): duration, frames, pixels."""


class UnsupportedVideo(ImagingError):
    """A container or codec outside the allow-list."""
