"""Inspection of the still images a client streams as video (JPEG, PNG).

The emulator does not look at the pictures; it checks that each frame really is the
image format its mime type claims and reads its size, so tests can assert what a client
sent. OpenCV decodes the frame fully when it is importable; otherwise the JPEG
start-of-frame marker (or the PNG header) is parsed by hand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

try:  # pragma: no cover - depends on the environment
    import cv2 as _cv2
    import numpy as _np
except ImportError:  # pragma: no cover
    _cv2 = None
    _np = None

# Start-of-frame markers (baseline, extended, progressive, lossless, ...); not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageInfo:
    """What was learnt about one frame: ``valid`` False means it is not a decodable image."""

    valid: bool
    width: int | None
    height: int | None
    decoder: str  # "opencv", "header" or "none"
    error: str | None = None


def jpeg_size_from_header(data: bytes) -> tuple[int, int]:
    """Reads ``(width, height)`` from a JPEG's SOF marker.

    Raises:
        ValueError: if ``data`` is not a JPEG or has no start-of-frame marker.
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise ValueError("no JPEG SOI marker")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError(f"bad JPEG marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            raise ValueError("bad JPEG segment length")
        if marker in _SOF_MARKERS:
            if i + 9 > len(data):
                raise ValueError("truncated JPEG SOF segment")
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            if width == 0 or height == 0:
                raise ValueError("JPEG SOF with zero size")
            return width, height
        if marker == 0xDA:  # start of scan before any SOF
            break
        i += 2 + length
    raise ValueError("no JPEG SOF marker")


def png_size_from_header(data: bytes) -> tuple[int, int]:
    """Reads ``(width, height)`` from a PNG IHDR chunk.

    Raises:
        ValueError: if ``data`` is not a PNG.
    """
    if len(data) < 24 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("no PNG signature / IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def inspect_image(data: bytes, mime_base: str) -> ImageInfo:
    """Checks that ``data`` is an image of type ``mime_base`` and reads its size."""
    try:
        if mime_base == "image/jpeg":
            header_size = jpeg_size_from_header(data)
        elif mime_base == "image/png":
            header_size = png_size_from_header(data)
        else:
            return ImageInfo(False, None, None, "none", f"unsupported image type {mime_base}")
    except ValueError as exc:
        return ImageInfo(False, None, None, "header", str(exc))
    if _cv2 is None:
        return ImageInfo(True, header_size[0], header_size[1], "header")
    image = _cv2.imdecode(_np.frombuffer(data, dtype=_np.uint8), _cv2.IMREAD_UNCHANGED)
    if image is None:
        return ImageInfo(False, header_size[0], header_size[1], "opencv", "OpenCV could not decode the image")
    height, width = image.shape[:2]
    return ImageInfo(True, int(width), int(height), "opencv")
