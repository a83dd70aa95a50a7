"""Framing for the Live API: fit a frame within 768x768, JPEG-encode it, and map
``media_resolution`` names to the SDK enum.

The Live API takes video as a sequence of still JPEG frames; Google's guidance is
"768x768 resolution at 1 FPS". These functions are CPU work (a 1080p frame takes a few
milliseconds): run them off the event loop, as :class:`~duplex.video.VideoStreamer` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "DEFAULT_MAX_SIDE",
    "DEFAULT_QUALITY",
    "JPEG_MIME_TYPE",
    "EncodedFrame",
    "FrameEncoder",
    "fit_frame",
    "encode_jpeg",
    "encode_for_live",
    "media_resolution_enum",
]


def _cv2() -> Any:
    """OpenCV, imported on first use: :func:`media_resolution_enum` (used by the Live layer)
    must work without the video extra."""
    global _CV2
    if _CV2 is None:
        from ..extras import require

        require("duplex.video", "video")
        import cv2

        _CV2 = cv2
    return _CV2


_CV2: Any = None

#: Longest side of a frame sent to the Live API ("use 768x768 resolution").
DEFAULT_MAX_SIDE = 768
#: JPEG quality used unless told otherwise (1-100).
DEFAULT_QUALITY = 80
#: The mime type of the encoded frames, for ``types.Blob(data=..., mime_type=...)``.
JPEG_MIME_TYPE = "image/jpeg"


def _check_frame(frame: Any) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise InvalidInputError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise InvalidInputError(
            f"a frame must be (height, width) or (height, width, 1|3|4), got shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InvalidInputError(f"a frame must not be empty, got shape {frame.shape}")
    return frame


def fit_frame(frame: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> np.ndarray:
    """The frame scaled down to fit within ``max_side`` x ``max_side``, aspect ratio kept.

    A frame that already fits is returned as is (never upscaled). Downscaling uses
    ``INTER_AREA`` (no aliasing). The longer side becomes exactly ``max_side``; the
    shorter one is rounded and at least 1 pixel.
    """
    frame = _check_frame(frame)
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise InvalidInputError(f"max_side must be a whole number >= 1, got {max_side!r}")
    height, width = frame.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return frame
    scale = max_side / longest
    size = (min(max_side, max(1, round(width * scale))), min(max_side, max(1, round(height * scale))))
    cv2 = _cv2()
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(frame: np.ndarray, quality: int = DEFAULT_QUALITY) -> bytes:
    """JPEG bytes of a BGR (or gray, or BGRA: alpha dropped) ``uint8`` frame.

    ``quality`` is 1-100 (higher: sharper and larger).
    """
    frame = _check_frame(frame)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidInputError(f"JPEG quality must be a whole number from 1 to 100, got {quality!r}")
    if frame.dtype != np.uint8:
        raise InvalidInputError(
            f"a frame must be uint8 (0-255), got {frame.dtype}: convert it, e.g. "
            "np.clip(frame * 255, 0, 255).astype(np.uint8) for floats in 0..1")
    cv2 = _cv2()
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidInputError(f"OpenCV could not JPEG-encode a frame of shape {frame.shape}")
    return buf.tobytes()


class EncodedFrame(NamedTuple):
    """A frame ready to send: JPEG bytes and the encoded width and height in pixels."""

    jpeg: bytes
    width: int
    height: int


class FrameEncoder:
    """Fits frames within ``max_side`` and JPEG-encodes them at ``quality``.

    With ``max_bytes`` set, a frame whose JPEG is larger is encoded again at lower quality
    (steps of 15, down to 20) so each message stays bounded.
    """

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, quality: int = DEFAULT_QUALITY,
                 max_bytes: int | None = None) -> None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
            raise InvalidInputError(f"max_side must be a whole number >= 1, got {max_side!r}")
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
            raise InvalidInputError(f"JPEG quality must be a whole number from 1 to 100, got {quality!r}")
        if max_bytes is not None and max_bytes < 1:
            raise InvalidInputError(f"max_bytes must be positive or None, got {max_bytes!r}")
        self.max_side = max_side
        self.quality = quality
        self.max_bytes = max_bytes

    def encode(self, frame: np.ndarray) -> EncodedFrame:
        """Fits and encodes one frame."""
        fitted = fit_frame(frame, self.max_side)
        quality = self.quality
        jpeg = encode_jpeg(fitted, quality)
        while self.max_bytes is not None and len(jpeg) > self.max_bytes and quality > 20:
            quality = max(20, quality - 15)
            jpeg = encode_jpeg(fitted, quality)
        return EncodedFrame(jpeg, int(fitted.shape[1]), int(fitted.shape[0]))

    __call__ = encode

    def __repr__(self) -> str:
        return f"FrameEncoder(max_side={self.max_side}, quality={self.quality}, max_bytes={self.max_bytes})"


def encode_for_live(frame: np.ndarray, max_side: int = DEFAULT_MAX_SIDE,
                    quality: int = DEFAULT_QUALITY) -> EncodedFrame:
    """Fits a frame within ``max_side`` x ``max_side`` and JPEG-encodes it: an
    :class:`EncodedFrame` ``(jpeg, width, height)``, unpackable as a tuple."""
    return FrameEncoder(max_side, quality).encode(frame)


_RESOLUTIONS = ("low", "medium", "high")


def media_resolution_enum(name: Any) -> types.MediaResolution:
    """The google-genai ``types.MediaResolution`` member for ``"low"``, ``"medium"`` or
    ``"high"`` (any case; the full names ``"MEDIA_RESOLUTION_LOW"`` etc. and enum members
    are accepted too).

    The SDK does not map lowercase strings: ``media_resolution="low"`` is sent verbatim
    and is not a valid value for the Gemini API. Raises ``ValueError`` (an
    :class:`~duplex.errors.InvalidInputError`) naming the valid choices otherwise.
    """
    from google.genai import types  # imported here: it takes about a second

    if isinstance(name, types.MediaResolution):
        return name
    if isinstance(name, str):
        key = name.strip().lower().removeprefix("media_resolution_")
        if key in _RESOLUTIONS:
            return types.MediaResolution[f"MEDIA_RESOLUTION_{key.upper()}"]
    raise InvalidInputError(
        f"unknown media resolution {name!r}: use one of 'low' (64 tokens per frame), "
        "'medium' (256) or 'high'")
