"""Paced, off-loop video frames for a Live session.

:class:`VideoStreamer` opens a source, reads, fits and JPEG-encodes frames at a steady
rate (1 FPS by default), all on its own worker thread, and hands them to asyncio through
a one-frame mailbox: newest wins, so a slow consumer never makes frames pile up and a
frame never waits in front of audio. Problems (no camera, the end of a file, a failed
read) become :class:`VideoEvent` objects and the stream ends cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Literal, TypeVar

from ..errors import InvalidInputError
from .framing import DEFAULT_MAX_SIDE, DEFAULT_QUALITY, JPEG_MIME_TYPE, FrameEncoder
from .sources import FileSource, VideoSource, VideoSourceError, open_source

__all__ = ["VideoFrame", "VideoEvent", "VideoStreamer"]

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFrame:
    """One encoded frame.

    ``timestamp`` is ``time.monotonic()`` when the source was read (the event loop's
    clock); ``sequence`` counts frames the streamer produced from 0, so a gap means the
    consumer was slow and an older frame was replaced by a newer one.
    """

    jpeg: bytes
    width: int
    height: int
    timestamp: float
    sequence: int
    #: Seconds the worker spent reading, fitting and encoding this frame.
    encode_s: float = 0.0
    mime_type: str = JPEG_MIME_TYPE

    def to_blob(self) -> Any:
        """The frame as ``google.genai.types.Blob``, for
        ``session.send_realtime_input(video=frame.to_blob())``."""
        from google.genai import types

        return types.Blob(data=self.jpeg, mime_type=self.mime_type)


@dataclass(frozen=True)
class VideoEvent:
    """Something the consumer should know about the stream.

    ``kind`` is ``"opened"`` (the source works), ``"error"`` (it could not be opened or
    read; the stream has ended; ``message`` says what to check) or ``"ended"`` (a file
    reached its end).
    """

    kind: Literal["opened", "error", "ended"]
    message: str
    source: str
    exception: BaseException | None = field(default=None, compare=False)


class _Mailbox:
    """Holds at most one frame for the consumer; a new frame replaces an unread one."""

    def __init__(self) -> None:
        self._frame: VideoFrame | None = None
        self._done = False
        self._changed = asyncio.Event()

    def put(self, frame: VideoFrame) -> bool:
        """Stores the frame; True when it replaced one the consumer never took."""
        replaced = self._frame is not None
        self._frame = frame
        self._changed.set()
        return replaced

    def finish(self) -> None:
        """No more frames will come (a pending one is still delivered)."""
        self._done = True
        self._changed.set()

    async def get(self) -> VideoFrame | None:
        """The next frame, or None once finished and empty."""
        while self._frame is None and not self._done:
            self._changed.clear()
            await self._changed.wait()
        frame, self._frame = self._frame, None
        return frame


class VideoStreamer:
    """Produces :class:`VideoFrame` objects from a source at ``fps`` (default 1).

    ``source`` is a :class:`VideoSource` or a spec for :func:`open_source` (``"camera"``,
    ``"screen:2"``, a path; ``loop`` applies to video files). Open, read, fit and encode
    run on one dedicated worker thread, never on the event loop. Frames are scheduled on
    absolute deadlines (``start + n / fps`` on the monotonic clock), so the rate does not
    drift; when a frame takes longer than the period, the missed deadlines are skipped,
    not queued. At most one frame waits for the consumer; a newer one replaces it.

    The streamer outlives its iterations: :meth:`frames` may be iterated again after a
    loop was left or its task cancelled (say, a Live session reconnecting), while the
    source stays open and keeps producing. It stops when the source ends or fails (the
    source is then closed) or at :meth:`aclose`. Use it as an async context manager,
    which also starts the source at once (a camera warms up while the session connects)::

        async with VideoStreamer("camera", fps=1.0) as video:
            async for frame in video.frames():
                await session.send_realtime_input(video=frame.to_blob())

    Events go to :attr:`events` (an ``asyncio.Queue``; :meth:`drain_events` empties it)
    and to ``on_event`` if given.
    """

    def __init__(self, source: VideoSource | str | os.PathLike[str] | int, fps: float = 1.0,
                 max_side: int = DEFAULT_MAX_SIDE, quality: int = DEFAULT_QUALITY, *,
                 max_bytes: int | None = None, loop: bool = False,
                 on_event: Callable[[VideoEvent], None] | None = None) -> None:
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 60:
            raise InvalidInputError(f"fps must be a number above 0 and at most 60, got {fps!r}")
        resolved = open_source(source, loop=loop)
        if resolved is None:
            raise InvalidInputError("VideoStreamer needs a video source, got 'none': leave video off instead")
        #: The source frames come from.
        self.source: VideoSource = resolved
        self.fps: float = float(fps)
        self.encoder: FrameEncoder = FrameEncoder(max_side, quality, max_bytes)
        #: Events, in order: "opened", then "error" or "ended" when the stream stops.
        self.events: asyncio.Queue[VideoEvent] = asyncio.Queue()
        self._on_event = on_event
        #: Frames produced so far (the next frame's sequence number).
        self.frames_produced: int = 0
        #: Frames a newer one replaced before the consumer took them.
        self.frames_replaced: int = 0
        #: Deadlines skipped because producing a frame took longer than the period.
        self.deadlines_skipped: int = 0
        #: The last event, or None.
        self.last_event: VideoEvent | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._mailbox: _Mailbox | None = None
        self._task: asyncio.Task[None] | None = None
        self._source_closed = False
        self._closed = False

    @property
    def period_s(self) -> float:
        """Seconds between frames (``1 / fps``)."""
        return 1.0 / self.fps

    @property
    def running(self) -> bool:
        """Whether frames are being produced (started, and not ended, failed or closed)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Starts opening the source and producing frames (needs a running event loop).

        Called by :meth:`frames` and ``async with``; calling it again does nothing.
        """
        if self._closed:
            raise RuntimeError("this VideoStreamer is closed: make a new one")
        if self._task is not None:
            return
        self._mailbox = _Mailbox()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duplex-video")
        self._task = asyncio.get_running_loop().create_task(self._produce(), name="duplex-video")

    async def frames(self) -> AsyncIterator[VideoFrame]:
        """Yields frames until the source ends or fails, or :meth:`aclose` is called.

        Leaving an iteration (break, cancel) keeps the source open, and a new iteration
        starts with the newest frame; after the end it yields nothing. Iterate from one
        task at a time: concurrent iterations would share the frames, each frame going to
        one of them.
        """
        self.start()
        assert self._mailbox is not None
        while True:
            frame = await self._mailbox.get()
            if frame is None:
                return
            yield frame

    def drain_events(self) -> list[VideoEvent]:
        """The events not yet taken from :attr:`events`, oldest first (empties the queue)."""
        drained = []
        while not self.events.empty():
            drained.append(self.events.get_nowait())
        return drained

    async def aclose(self) -> None:
        """Stops producing and closes the source (on the worker thread). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])  # raises only if our own caller is cancelled
        if self._mailbox is not None:
            self._mailbox.finish()
        await self._close_source()

    async def __aenter__(self) -> VideoStreamer:
        """Starts the streamer; leaving the block calls :meth:`aclose`."""
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stops the stream and closes the source."""
        await self.aclose()

    async def _close_source(self) -> None:
        """Closes the source on the worker thread (after a read in flight) and retires it."""
        if self._executor is None or self._source_closed:
            return
        self._source_closed = True
        try:
            closing = asyncio.wrap_future(self._executor.submit(self.source.close))
            # Bounded, so a hung driver cannot hang shutdown.
            await asyncio.wait_for(asyncio.shield(closing), timeout=5.0)
        except Exception:  # noqa: BLE001 - a failing or slow close() must not break shutdown
            _log.warning("closing %s failed or timed out", self.source.name, exc_info=True)
        finally:
            self._executor.shutdown(wait=False)

    def _emit(self, kind: Literal["opened", "error", "ended"], message: str,
              exception: BaseException | None = None) -> None:
        event = VideoEvent(kind, message, self.source.name, exception)
        self.last_event = event
        self.events.put_nowait(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken callback must not stop the video
                _log.exception("on_event callback failed for %r", event)

    async def _in_worker(self, fn: Callable[[], T]) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _capture(self) -> VideoFrame | None:
        """Worker thread: read, fit, encode. None at the end of the source."""
        started = time.monotonic()
        frame = self.source.read()
        if frame is None:
            return None
        encoded = self.encoder.encode(frame)
        sequence = self.frames_produced
        self.frames_produced += 1
        return VideoFrame(encoded.jpeg, encoded.width, encoded.height, started, sequence,
                          time.monotonic() - started)

    async def _produce(self) -> None:
        assert self._mailbox is not None
        loop = asyncio.get_running_loop()
        try:
            try:
                await self._in_worker(self.source.open)
            except Exception as exc:  # noqa: BLE001 - reported as an event
                self._emit("error", _describe(exc, self.source), exc)
                await self._close_source()
                return
            self._emit("opened", f"{self.source.name} opened; sending {self.fps:g} frame(s) per second")
            period = self.period_s
            start = loop.time()
            n = 0
            while True:
                delay = start + n * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    frame = await self._in_worker(self._capture)
                except Exception as exc:  # noqa: BLE001 - reported as an event
                    self._emit("error", _describe(exc, self.source), exc)
                    await self._close_source()
                    return
                if frame is None:
                    hint = " (pass loop=True to play it again)" if isinstance(self.source, FileSource) else ""
                    self._emit("ended", f"{self.source.name} ended{hint}")
                    await self._close_source()
                    return
                if self._mailbox.put(frame):
                    self.frames_replaced += 1
                # Next deadline: the first one of the grid not already in the past.
                due = max(n + 1, math.ceil((loop.time() - start) / period - 1e-9))
                self.deadlines_skipped += due - (n + 1)
                n = due
        finally:
            self._mailbox.finish()


def _describe(exc: BaseException, source: VideoSource) -> str:
    if isinstance(exc, VideoSourceError):
        return str(exc)
    return f"{source.name} failed: {type(exc).__name__}: {exc}"
