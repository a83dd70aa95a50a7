"""Video sources: camera, screen, video file and still image, behind one small interface.

Every source is a :class:`VideoSource`: ``open()``, ``read()`` → a BGR ``uint8`` frame (or
``None`` once a file has ended), ``close()``, a ``name``, and a context manager. Opening
can block (a camera takes about a second), so in an asyncio program open and read sources
on a worker thread; :class:`~duplex.video.VideoStreamer` does that for you.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..extras import require

require("duplex.video", "video")

import cv2  # noqa: E402 - after the check that says which extra to install

from ..errors import DuplexError, InvalidInputError

__all__ = [
    "VideoSourceError",
    "VideoSource",
    "CameraSource",
    "ScreenSource",
    "FileSource",
    "ImageSource",
    "open_source",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
]

#: File extensions :func:`open_source` treats as still images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
#: File extensions :func:`open_source` treats as video files.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".gif"})

# A forward jump of at most this many frames is decoded in order (grab); a longer one seeks.
_MAX_GRAB_SKIP = 4
# Frame rate assumed when a file does not say (some streams report 0).
_FALLBACK_FPS = 30.0


class VideoSourceError(DuplexError, OSError):
    """A video source that cannot be opened or read (no camera, no display, a bad file)."""


class VideoSource(ABC):
    """Base class of the frame sources: ``open()``, ``read()``, ``close()``, ``name``.

    Subclasses implement ``_open``, ``_read`` and ``_close``; the base class keeps the
    open/closed state, so ``open()`` and ``close()`` may be called twice and ``read()`` on
    a closed source raises a clear error. ``with source:`` opens and closes it.
    Frames are BGR ``uint8`` arrays of shape ``(height, width, 3)``; treat them as
    read-only (a still image or a repeated file frame is the same array every time).
    """

    def __init__(self, name: str) -> None:
        #: A short human-readable name, such as ``"camera 0"``, used in messages.
        self.name = name
        self._is_open = False

    @property
    def is_open(self) -> bool:
        """Whether the source is open (``read()`` may be called)."""
        return self._is_open

    def open(self) -> VideoSource:
        """Opens the source (blocking: call it off the event loop) and returns it.

        Raises :class:`VideoSourceError` with a message that says what to check.
        """
        if not self._is_open:
            self._open()
            self._is_open = True
        return self

    def read(self) -> np.ndarray | None:
        """The current frame (BGR ``uint8``), or ``None`` when the source has ended.

        Raises :class:`VideoSourceError` when the source fails (a camera unplugged).
        """
        if not self._is_open:
            raise VideoSourceError(f"{self.name} is not open: call open() first (or use it in a with block)")
        return self._read()

    def close(self) -> None:
        """Releases the device or file; safe to call more than once."""
        if self._is_open:
            self._is_open = False
            self._close()

    def __enter__(self) -> VideoSource:
        """Opens the source (blocking) for a ``with`` block."""
        return self.open()

    def __exit__(self, *exc: object) -> None:
        """Closes the source."""
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    @abstractmethod
    def _open(self) -> None:
        """Acquires the device or file; raises VideoSourceError on failure."""

    @abstractmethod
    def _read(self) -> np.ndarray | None:
        """Returns the current frame, or None at the end of the source."""

    @abstractmethod
    def _close(self) -> None:
        """Releases what ``_open`` acquired."""


class CameraSource(VideoSource):
    """A camera through ``cv2.VideoCapture(index)``.

    ``open()`` takes about a second on many systems, so never call it on the event loop.
    The driver buffer is set to one frame and a stale frame is dropped before each read
    that comes long after the previous one, so a 1 FPS reader sees a current picture.
    ``width``/``height`` request a capture size (the camera may pick the nearest one).
    """

    def __init__(self, index: int = 0, *, backend: int = cv2.CAP_ANY,
                 width: int | None = None, height: int | None = None) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidInputError(f"camera index must be a whole number >= 0, got {index!r}")
        super().__init__(f"camera {index}")
        self.index = index
        self._backend = backend
        self._size = (width, height)
        self._cap: Any = None
        self._last_read = 0.0

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.index, self._backend)
        if not cap.isOpened():
            cap.release()
            raise VideoSourceError(
                f"camera {self.index} could not be opened: is a camera connected and not used by "
                "another program? (try another index, e.g. camera:1, or 'screen' / a file instead)")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if self._size[0]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
        if self._size[1]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
        for _ in range(5):  # some cameras need a few reads to warm up
            ok, frame = cap.read()
            if ok and frame is not None:
                break
        else:
            cap.release()
            raise VideoSourceError(
                f"camera {self.index} opened but delivers no frames: is it used by another "
                "program, or does this user lack permission to use it?")
        self._cap = cap
        self._last_read = time.monotonic()

    def _read(self) -> np.ndarray:
        now = time.monotonic()
        if now - self._last_read > 0.1:
            self._cap.grab()  # drop the frame the driver has held since the last read
        self._last_read = now
        for _ in range(3):
            ok, frame = self._cap.read()
            if ok and frame is not None:
                return frame
        raise VideoSourceError(
            f"camera {self.index} stopped delivering frames: was it unplugged or taken by another program?")

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ScreenSource(VideoSource):
    """A screen grab through ``mss``: one monitor (``1`` = the first), or ``0`` for all of
    them as one virtual desktop. ``display`` picks an X11 display on Linux (default
    ``$DISPLAY``). Use it from one thread only (mss on X11 is bound to its thread)."""

    def __init__(self, monitor: int = 1, *, display: str | None = None) -> None:
        if isinstance(monitor, bool) or not isinstance(monitor, int) or monitor < 0:
            raise InvalidInputError(f"monitor must be a whole number >= 0, got {monitor!r}")
        super().__init__(f"screen {monitor}")
        self.monitor = monitor
        self._display = display
        self._sct: Any = None
        self._region: dict[str, int] | None = None

    def _open(self) -> None:
        import mss

        kwargs = {"display": self._display} if self._display else {}
        factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10.2 / older
        try:
            sct = factory(**kwargs)
            monitors = sct.monitors
        except Exception as exc:
            raise VideoSourceError(
                f"screen capture is unavailable ({exc}): is there a graphical session? "
                "(on Linux, is $DISPLAY set?)") from exc
        count = len(monitors) - 1
        if self.monitor > count:
            sct.close()
            raise VideoSourceError(
                f"screen {self.monitor} does not exist: this display has {count} monitor(s); use "
                f"screen:1..screen:{count} for one monitor, or screen:0 for all of them together")
        self._sct = sct
        self._region = dict(monitors[self.monitor])

    def _read(self) -> np.ndarray:
        try:
            shot = self._sct.grab(self._region)
        except Exception as exc:
            raise VideoSourceError(f"screen {self.monitor} could not be captured: {exc}") from exc
        return cv2.cvtColor(np.asarray(shot), cv2.COLOR_BGRA2BGR)

    def _close(self) -> None:
        if self._sct is not None:
            self._sct.close()
            self._sct = None


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise VideoSourceError(f"{what} '{path}' does not exist: check the path")
    if path.is_dir():
        raise VideoSourceError(f"{what} '{path}' is a folder, not a file: give the path of one file")


class FileSource(VideoSource):
    """A video file played against the wall clock.

    ``read()`` returns the frame that belongs to the time elapsed since the first read
    (frame ``int(elapsed * file_fps)``), so a 1 FPS reader of a 30 FPS file gets every
    30th frame: short forward steps are decoded in order, longer ones seek by frame
    index. At the end ``read()`` returns ``None``, or with ``loop=True`` starts over.
    ``clock`` (seconds, monotonic) is there for tests.
    """

    def __init__(self, path: str | os.PathLike[str], loop: bool = False, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path: Path = Path(path).expanduser()
        super().__init__(f"video file '{self.path}'")
        self.loop = loop
        self._clock = clock
        self._cap: Any = None
        #: Frames per second of the file (30 assumed when the file does not say).
        self.fps: float = _FALLBACK_FPS
        #: Number of frames, when known.
        self.frame_count: int | None = None
        self._start: float | None = None
        self._next = 0  # index of the frame the decoder returns next
        self._last_index = -1
        self._last_frame: np.ndarray | None = None

    @property
    def duration_s(self) -> float | None:
        """Length of the file in seconds, when known."""
        return None if self.frame_count is None else self.frame_count / self.fps

    def _open(self) -> None:
        _check_file(self.path, "video file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise VideoSourceError(
                f"video file '{self.path}' could not be opened: is it a video FFmpeg can decode "
                "(mp4, avi, mkv, webm, mov)?")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else _FALLBACK_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count > 0 else None
        self._cap = cap
        self._start, self._next, self._last_index, self._last_frame = None, 0, -1, None

    def _read(self) -> np.ndarray | None:
        now = self._clock()
        if self._start is None:
            self._start = now
        index = int((now - self._start) * self.fps + 1e-6)
        if self.frame_count is not None and index >= self.frame_count:
            if not self.loop:
                return None
            index %= self.frame_count
        frame = self._frame_at(index)
        if frame is None and index > 0:
            # The file is shorter than its header said: learn the real length.
            self.frame_count = index
            if not self.loop:
                return None
            frame = self._frame_at(0)
        if frame is None:
            raise VideoSourceError(f"video file '{self.path}' has no frame that can be decoded")
        return frame

    def _frame_at(self, index: int) -> np.ndarray | None:
        if index == self._last_index:
            return self._last_frame  # read faster than the file's frame rate
        skip = index - self._next
        if skip < 0 or skip > _MAX_GRAB_SKIP:
            if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, index):
                if skip < 0:  # cannot seek back: reopen and decode forward
                    self._cap.release()
                    self._cap = cv2.VideoCapture(str(self.path))
                    skip = index
                for _ in range(skip):
                    if not self._cap.grab():
                        return None
        else:
            for _ in range(skip):
                if not self._cap.grab():
                    return None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        frame.flags.writeable = False
        self._next, self._last_index, self._last_frame = index + 1, index, frame
        return frame

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._last_frame = None


class ImageSource(VideoSource):
    """A still image (PNG, JPEG, ...): every ``read()`` returns the same frame."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path: Path = Path(path).expanduser()
        super().__init__(f"image '{self.path}'")
        self._frame: np.ndarray | None = None

    def _open(self) -> None:
        _check_file(self.path, "image")
        data = np.fromfile(str(self.path), dtype=np.uint8)  # also works for non-ASCII paths
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if frame is None:
            raise VideoSourceError(
                f"image '{self.path}' could not be decoded: is it a PNG, JPEG, BMP, WebP or TIFF file?")
        frame.flags.writeable = False
        self._frame = frame

    def _read(self) -> np.ndarray | None:
        return self._frame

    def _close(self) -> None:
        self._frame = None


def _index_after_colon(spec: str, kind: str, arg: str) -> int:
    if not arg.isdigit():
        raise InvalidInputError(
            f"bad video source '{spec}': after '{kind}:' comes a number, e.g. '{kind}:1'")
    return int(arg)


def open_source(spec: str | os.PathLike[str] | int | VideoSource | None, *,
                loop: bool = False) -> VideoSource | None:
    """The source a spec names, **not yet opened** (opening may block; call ``open()`` on
    a worker thread, or hand the source to :class:`~duplex.video.VideoStreamer`).

    ``"camera"`` / ``"camera:1"`` (or an int) → :class:`CameraSource`; ``"screen"`` /
    ``"screen:2"`` → :class:`ScreenSource` (``screen:0`` = all monitors); ``"none"`` or
    ``None`` → ``None``; a path → :class:`ImageSource` or :class:`FileSource` (``loop``)
    by extension, else by asking OpenCV whether it can read it as an image. A
    :class:`VideoSource` is returned as is. Keywords win over files of the same name
    (write ``./camera`` for such a file). Raises :class:`VideoSourceError` for a missing
    file and :class:`~duplex.errors.InvalidInputError` for a malformed spec.
    """
    if spec is None or isinstance(spec, VideoSource):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        return CameraSource(spec)
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise InvalidInputError(f"video source must be a string, path, int or VideoSource, got {spec!r}")
    text = spec.strip()
    kind, colon, arg = text.lower().partition(":")
    if text.lower() == "none":
        return None
    if kind == "camera":
        return CameraSource(_index_after_colon(spec, kind, arg) if colon else 0)
    if kind == "screen":
        return ScreenSource(_index_after_colon(spec, kind, arg) if colon else 1)
    path = Path(text).expanduser()
    if not path.exists():
        raise VideoSourceError(
            f"video source '{spec}' is not 'camera', 'camera:N', 'screen', 'screen:N', 'none' "
            "or an existing file: check the path")
    _check_file(path, "video source")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return ImageSource(path)
    if suffix in VIDEO_EXTENSIONS:
        return FileSource(path, loop=loop)
    return ImageSource(path) if cv2.haveImageReader(str(path)) else FileSource(path, loop=loop)
