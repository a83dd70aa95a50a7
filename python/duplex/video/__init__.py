"""Video for speech-to-speech sessions: sources, framing and 1 FPS pacing.

The Live API takes video as still JPEG frames, about one per second, best at 768x768.
This package reads frames from a camera, a screen, a video file or an image, fits them
within 768x768, JPEG-encodes them and paces them, all off the event loop, so video never
delays audio.

API map
-------
:class:`VideoSource`        the source interface: ``open()``, ``read()``, ``close()``, ``name``
:class:`CameraSource`       ``cv2.VideoCapture(index)``
:class:`ScreenSource`       one monitor through ``mss``
:class:`FileSource`         a video file, frames picked by wall-clock time
:class:`ImageSource`        a still image
:func:`open_source`         ``"camera"``, ``"camera:1"``, ``"screen"``, ``"screen:2"``, a path, ``"none"``
:func:`fit_frame`           scale down to fit ``max_side`` x ``max_side``, aspect kept
:func:`encode_jpeg`         frame → JPEG bytes
:class:`FrameEncoder`       both, with an optional size cap; :func:`encode_for_live` in one call
:class:`VideoStreamer`      paced :class:`VideoFrame` objects from ``frames()``, :class:`VideoEvent` on problems
:func:`media_resolution_enum`  ``"low"|"medium"|"high"`` → ``types.MediaResolution``

Example::

    async with VideoStreamer("camera", fps=1.0) as video:
        async for frame in video.frames():
            await session.send_realtime_input(video=frame.to_blob())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attributes

# Submodules load on first use (PEP 562): the Live layer imports framing's
# media_resolution_enum without the video extra, and ``import duplex.video`` stays cheap.
_EXPORTS = {
    "DEFAULT_MAX_SIDE": "framing",
    "DEFAULT_QUALITY": "framing",
    "JPEG_MIME_TYPE": "framing",
    "EncodedFrame": "framing",
    "FrameEncoder": "framing",
    "encode_for_live": "framing",
    "encode_jpeg": "framing",
    "fit_frame": "framing",
    "media_resolution_enum": "framing",
    "IMAGE_EXTENSIONS": "sources",
    "VIDEO_EXTENSIONS": "sources",
    "CameraSource": "sources",
    "FileSource": "sources",
    "ImageSource": "sources",
    "ScreenSource": "sources",
    "VideoSource": "sources",
    "VideoSourceError": "sources",
    "open_source": "sources",
    "VideoEvent": "streamer",
    "VideoFrame": "streamer",
    "VideoStreamer": "streamer",
}

if TYPE_CHECKING:
    from .framing import (
        DEFAULT_MAX_SIDE,
        DEFAULT_QUALITY,
        JPEG_MIME_TYPE,
        EncodedFrame,
        FrameEncoder,
        encode_for_live,
        encode_jpeg,
        fit_frame,
        media_resolution_enum,
    )
    from .sources import (
        IMAGE_EXTENSIONS,
        VIDEO_EXTENSIONS,
        CameraSource,
        FileSource,
        ImageSource,
        ScreenSource,
        VideoSource,
        VideoSourceError,
        open_source,
    )
    from .streamer import VideoEvent, VideoFrame, VideoStreamer


__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_attributes(globals(), _EXPORTS)


__all__ = [
    "DEFAULT_MAX_SIDE",
    "DEFAULT_QUALITY",
    "IMAGE_EXTENSIONS",
    "JPEG_MIME_TYPE",
    "VIDEO_EXTENSIONS",
    "CameraSource",
    "EncodedFrame",
    "FileSource",
    "FrameEncoder",
    "ImageSource",
    "ScreenSource",
    "VideoEvent",
    "VideoFrame",
    "VideoSource",
    "VideoSourceError",
    "VideoStreamer",
    "encode_for_live",
    "encode_jpeg",
    "fit_frame",
    "media_resolution_enum",
    "open_source",
]
