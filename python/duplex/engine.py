"""`AudioEngine`: full-duplex audio for a speech-to-speech session.

The device callbacks run in Rust and never touch Python; this module is the friendly
surface: context managers, blocking and asyncio calls. The typed results it returns live in
:mod:`duplex.records` (re-exported here), the check of the virtual-device arguments in
:mod:`duplex.devices`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, Union, cast

import numpy as np

from . import _engine
from ._timeouts import playback_full_message, timeout_s
from .devices import VirtualDevice, _virtual_for_engine
from .errors import EngineClosedError, PlaybackFullError
from .records import DeviceEvent, DeviceEventKind, InterruptReport, Stats

__all__ = [
    "AudioEngine",
    "Backend",
    "DEFAULT_LATENCY",
    "DeviceEvent",
    "DeviceEventKind",
    "DeviceRef",
    "Latency",
    "InterruptReport",
    "Pcm",
    "Stats",
    "CAPTURE_RATE_HZ",
    "PLAY_RATE_HZ",
]

#: Sample rate of the chunks :meth:`AudioEngine.read` returns (what the Live API takes).
CAPTURE_RATE_HZ: int = _engine.CAPTURE_RATE_HZ
#: Sample rate of the PCM :meth:`AudioEngine.play` takes (what the Live API sends).
PLAY_RATE_HZ: int = _engine.PLAY_RATE_HZ

#: How often play_async()/end_turn_async() retry while the playback buffer is full (a
#: non-blocking attempt each time; 10 ms is half a typical 20-40 ms model chunk).
_PLAY_POLL_S = 0.010
#: Longest wait of one reader-thread read (so a stopped or muted engine is noticed).
_READ_SLICE_S = 0.25
#: How often a muted read_async() drops captured audio.
_MUTED_POLL_S = 0.020

def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


#: Model audio :meth:`AudioEngine.play` takes: 16-bit little-endian PCM bytes or int16 array.
Pcm = Union[bytes, bytearray, memoryview, np.ndarray]
#: A device: ``None`` (the default), ``False`` (none), an index or a name from :func:`duplex.devices`.
DeviceRef = Union[None, bool, int, str]
#: The engine's backends: real devices through cpal, or the clock-driven virtual device.
Backend = Literal["cpal", "virtual"]
#: Device buffer of real devices: ``"low"`` (20 ms), ``"high"`` (150 ms on the native PulseAudio
#: host, 80 ms on ALSA) or milliseconds
#: (4..1000). Unlike python-sounddevice's ``latency``, a number is milliseconds, not seconds.
Latency = Union[Literal["low", "high"], float]
#: The audio system real devices open through: ``"alsa"`` (cpal's ALSA host; a sound server
#: through ALSA's pulse plugin), ``"pulse"`` (the engine's own PulseAudio client, also for
#: pipewire-pulse: a real-time device thread, and interrupts that take back what the server
#: holds) or ``"auto"`` (``"pulse"`` where a PulseAudio server answers, else ``"alsa"``).
Host = Literal["auto", "pulse", "alsa"]
#: ``"high"``: 150 ms on the native PulseAudio host, 80 ms on ALSA. Measured with an independent
#: recorder of a PulseAudio null sink's monitor, full duplex: on the native host 150 ms had no
#: gap under any load (idle, both cores busy, Python holding the GIL 50 of every 100 ms, both)
#: where 80 ms had up to 12 per minute, and its interrupts take back what the server holds, so
#: barge-in stays 8-15 ms at either buffer. On ALSA the buffer plays out on an interrupt
#: (67 ms at 80 ms, 128 ms at 150 ms), so 80 ms is kept there. See the README's "Latency and
#: the device counters".
DEFAULT_LATENCY: Latency = cast(Latency, _engine.DEFAULT_LATENCY)
#: How often next_device_event_async() looks for an event (a non-blocking check each time).
_EVENT_POLL_S = 0.050


def _as_pcm(pcm: Pcm) -> bytes | bytearray | np.ndarray:
    if isinstance(pcm, memoryview):
        return pcm.tobytes()
    return pcm


class AudioEngine:
    """Full-duplex audio: 16 kHz mic chunks out, 24 kHz model audio in, instant flush.

    Parameters
    ----------
    input_device, output_device
        For real devices: ``None`` (the default device), an index or a name from
        :func:`duplex.devices`, or ``False`` to leave that direction closed.
    backend
        ``"cpal"`` (real devices), ``"virtual"`` (a default :class:`VirtualDevice`), or a
        :class:`VirtualDevice` instance.
    sample_rate, period_frames
        Ask real devices for this rate (8000..384000 Hz) and callback size (16..4096
        frames; default: the device's own rate, and periods from ``latency``). The engine
        resamples, so leave these unset unless you must. ``period_frames`` overrides
        ``latency``. With ``backend="virtual"`` they set the virtual device's format; with a
        :class:`VirtualDevice` they must agree with its own.
    latency
        Device buffer of real devices: ``"low"`` (20 ms), ``"high"`` (the default,
        :data:`DEFAULT_LATENCY`: 150 ms on the native PulseAudio host, 80 ms on ALSA) or
        milliseconds (4..1000; not seconds, unlike
        python-sounddevice). More buffer survives a busy machine; it costs that much delay
        (small against a model's 500+ ms answer). What the host grants is in
        :meth:`stats` (``output_period_frames``, ``output_delay_ms``, ...).
    host
        The audio system of real devices (:data:`Host`): ``"auto"`` (the default: ``"pulse"``
        where a PulseAudio server or pipewire-pulse answers, else ``"alsa"``), ``"pulse"``
        (the engine's own PulseAudio client; devices by sink/source name or index, see
        ``duplex devices``) or ``"alsa"`` (cpal's ALSA host). With ``"pulse"``, :meth:`interrupt` also takes
        back the audio the server already holds, so barge-in does not pay for the buffer.
    realtime
        Promote the device threads to real-time priority where the system allows it (rtkit
        or ``RLIMIT_RTPRIO``); elsewhere they quietly stay at normal priority, and
        ``stats().output_thread`` says which.
    chunk_ms
        Length of each capture chunk (16 kHz, 16-bit mono); 20-40 ms suits the Live API.
    prebuffer_ms
        Model audio a turn queues before it starts to play (a jitter buffer against bursty,
        slower-than-real-time delivery). :meth:`end_turn` plays a short turn at once.
    playback_buffer_ms, capture_buffer_ms
        Ring sizes. Playback must hold a long answer (the service sends ahead of real time).
    fade_ms
        Fade-out on :meth:`interrupt`, so the flush does not click.
    echo_cancellation
        Remove the model's own voice, played by the speaker, from the microphone (WebRTC's
        AEC3, in Rust). ``None`` (default): on for real devices when both directions are
        open, off on the virtual device. Switch it at run time with the
        :attr:`echo_cancellation` property. It needs both an input and an output.
    echo_backend
        ``"sonora"`` (default) or ``"aec3"``: two ports of AEC3, for A/B comparison.
    noise_suppression, high_pass_filter
        The canceller's own noise suppressor and 80 Hz high-pass filter (both on by
        default; they only run while echo cancellation is on).

    Examples
    --------
    >>> import duplex
    >>> with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0)) as engine:
    ...     chunk = engine.read(timeout=1.0)
    >>> len(chunk)
    640
    """

    def __init__(
        self,
        input_device: DeviceRef = None,
        output_device: DeviceRef = None,
        *,
        backend: Backend | VirtualDevice = "cpal",
        sample_rate: int | None = None,
        period_frames: int | None = None,
        latency: Latency = DEFAULT_LATENCY,
        realtime: bool = True,
        host: Host = "auto",
        chunk_ms: int = 20,
        prebuffer_ms: int = 200,
        playback_buffer_ms: int = 120_000,
        capture_buffer_ms: int = 2_000,
        fade_ms: float = 5.0,
        echo_cancellation: bool | None = None,
        echo_backend: str = "sonora",
        noise_suppression: bool = True,
        high_pass_filter: bool = True,
    ) -> None:
        virtual = _virtual_for_engine(backend, input_device, output_device, sample_rate, period_frames)
        self.virtual_device: VirtualDevice | None = virtual
        self._native = _engine.Engine(
            "virtual" if virtual else "cpal",
            input_device=input_device,
            output_device=output_device,
            sample_rate=sample_rate,
            period_frames=period_frames,
            latency=None if virtual else latency,
            realtime=None if virtual else realtime,
            host=None if virtual else host,
            chunk_ms=chunk_ms,
            prebuffer_ms=prebuffer_ms,
            playback_buffer_ms=playback_buffer_ms,
            capture_buffer_ms=capture_buffer_ms,
            fade_ms=fade_ms,
            virtual=virtual.to_options() if virtual else None,
        )
        self._native.set_echo_options(echo_backend, noise_suppression, high_pass_filter)
        if echo_cancellation is None:
            # Speakers and a microphone in one room: cancel. The virtual device only has an
            # echo when asked for one (loopback_delay_ms), so there it stays off unless asked.
            echo_cancellation = virtual is None and input_device is not False and output_device is not False
        self._native.set_echo_cancellation(bool(echo_cancellation))
        self.chunk_ms = chunk_ms
        self._read_pool: concurrent.futures.ThreadPoolExecutor | None = None
        # A read the reader thread is doing (or did) for a read_async() call that may have
        # been cancelled meanwhile; its chunk belongs to the next call.
        self._read_future: concurrent.futures.Future[bytes | None] | None = None
        self._muted = False
        self._mute_epoch = self._read_epoch = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> AudioEngine:
        """Opens the devices and starts the callbacks. Returns ``self``."""
        self._native.start()
        return self

    def stop(self) -> None:
        """Stops the callbacks; queued audio is dropped. A virtual output WAV is complete
        when this returns. The engine can be started again."""
        self._native.stop()

    def close(self) -> None:
        """Stops for good and frees the worker threads; later calls raise
        :class:`~duplex.errors.EngineClosedError`."""
        self._native.close()
        if self._read_pool is not None:
            self._read_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        """Whether the devices are running."""
        return self._native.running

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def __enter__(self) -> AudioEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AudioEngine:
        await asyncio.get_running_loop().run_in_executor(None, self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- capture -----------------------------------------------------------------------

    @property
    def chunk_bytes(self) -> int:
        """Bytes in one capture chunk (16-bit samples at 16 kHz)."""
        return 2 * self._native.chunk_frames

    def read(self, timeout: float | None = None) -> bytes | None:
        """The next capture chunk: ``chunk_ms`` of 16 kHz 16-bit little-endian mono PCM,
        ready to send as ``audio/pcm;rate=16000``. Waits up to ``timeout`` seconds (``None`` =
        until one is ready) with the GIL released; returns ``None`` on timeout, or raises
        :class:`~duplex.errors.DeviceLostError` if the real device is gone (after every chunk
        captured before the loss has been read)."""
        return self._native.read(timeout)

    def read_array(self, timeout: float | None = None) -> np.ndarray | None:
        """Like :meth:`read`, as a ``numpy.int16`` array."""
        return self._native.read_array(timeout)

    async def read_async(self, timeout: float | None = None) -> bytes | None:
        """Awaitable :meth:`read`. A ready chunk returns without leaving the event loop;
        otherwise the wait runs on the engine's reader thread, never on the loop.

        Cancelling it (``asyncio.timeout``, ``wait_for``, a cancelled task) loses nothing:
        a chunk the reader thread fetched after the cancel is returned by the next call.
        While the engine is :meth:`muted <mute>`, captured audio is dropped and no chunk
        is returned (the wait runs out its timeout)."""
        seconds = timeout_s(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            if self._muted:
                self._drop_capture()
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return None
                await asyncio.sleep(_MUTED_POLL_S if remaining is None else min(_MUTED_POLL_S, remaining))
                continue
            future = self._read_future
            if future is None:
                chunk = self._native.read(0.0)
                if chunk is not None or seconds == 0:
                    return chunk
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return None
                if self._read_pool is None:
                    self._read_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="duplex-read")
                # The thread waits in slices so that a muted or stopped engine is noticed.
                slice_s = _READ_SLICE_S if remaining is None else min(_READ_SLICE_S, remaining)
                future = self._read_future = self._read_pool.submit(self._native.read, slice_s)
                self._read_epoch = self._mute_epoch
            # asyncio.wait() neither cancels the thread's future when this call is cancelled
            # nor swallows the cancellation (wait_for can, before Python 3.12): the chunk
            # stays in self._read_future for the next call, so no chunk is ever lost.
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            waiter = asyncio.wrap_future(future)
            waiter.add_done_callback(_retrieve)  # an abandoned waiter's error is not "unretrieved"
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
            if not done:
                return None
            if self._read_future is not future:
                continue  # a concurrent call took this chunk; wait for the next one
            self._read_future = None
            chunk = future.result()  # raises what read() raised (e.g. EngineClosedError)
            if chunk is not None:
                if self._muted or self._read_epoch != self._mute_epoch:
                    continue  # captured while muted: never returned
                return chunk
            if deadline is not None and loop.time() >= deadline:
                return None

    def _drop_capture(self) -> None:
        """Discards captured audio while muted, including a chunk a reader thread holds."""
        future = self._read_future
        if future is not None and future.done():
            self._read_future = None
        with contextlib.suppress(EngineClosedError):
            self._native.clear_capture()

    def mute(self) -> None:
        """Mutes the microphone: captured audio is dropped from now on and the asyncio
        readers (:meth:`read_async`, :meth:`chunks`) return no chunks until :meth:`unmute`.
        A :class:`~duplex.LiveConversation` then tells the model the audio stream ended
        (``audio_stream_end``) once it has been quiet for a second. Returns at once."""
        self._muted = True
        self._mute_epoch += 1
        self._drop_capture()

    def unmute(self) -> None:
        """Ends :meth:`mute`: audio captured from now on is read again (nothing captured
        while muted is ever returned)."""
        self._drop_capture()
        self._muted = False

    @property
    def muted(self) -> bool:
        """Whether :meth:`mute` is in effect."""
        return self._muted

    @property
    def overflowed(self) -> bool:
        """Whether capture dropped audio just before the last chunk :meth:`read` returned:
        the reader fell more than ``capture_buffer_ms`` behind, so that chunk does not follow
        the one before it seamlessly. ``stats().capture_overflows`` counts every time."""
        return self._native.overflowed

    def clear_capture(self) -> None:
        """Drops captured audio that has not been read yet (for example after the user
        muted the microphone, so stale audio is not sent)."""
        self._native.clear_capture()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Capture chunks as they come, until the engine stops.

        Leaving the loop at any point (``break``, ``asyncio.timeout``, cancellation) loses
        no chunk: one fetched meanwhile is returned by the next read.

        >>> async for chunk in engine.chunks():          # doctest: +SKIP
        ...     await session.send_realtime_input(audio=Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
        """
        while self.running:
            try:
                chunk = await self.read_async(0.25)
            except EngineClosedError:
                return  # stopped while waiting
            if chunk is not None:
                yield chunk

    # -- playback ----------------------------------------------------------------------

    def play(self, pcm: Pcm, timeout: float | None = None) -> None:
        """Queues model audio: 24 kHz 16-bit mono PCM as bytes (little-endian) or a 1-D
        ``numpy.int16`` array. Waits with the GIL released while the playback buffer is
        full; after ``timeout`` seconds raises :class:`~duplex.errors.PlaybackFullError`
        with nothing queued, or :class:`~duplex.errors.DeviceLostError` if the real device
        is gone (nothing is queued into a ring nobody plays). Audio is never dropped
        silently."""
        self._native.play(_as_pcm(pcm), timeout)

    async def play_async(self, pcm: Pcm, timeout: float | None = None) -> None:
        """Awaitable :meth:`play` with backpressure: returns at once when there is room;
        while the playback buffer is full it waits on the event loop without blocking it
        (each attempt is a non-blocking try), up to ``timeout`` seconds, then raises
        :class:`~duplex.errors.PlaybackFullError`.

        All or nothing: when it returns, the whole chunk is queued; when it raises or is
        cancelled (``asyncio.timeout``, ``wait_for``, a cancelled task), nothing of it is
        queued, and nothing of it will be later."""
        data = _as_pcm(pcm)
        await self._retry_until_room(
            lambda: self._native.play(data, 0.0), timeout, "the chunk was not queued (nothing was lost)"
        )

    def end_turn(self, timeout: float | None = None) -> None:
        """Marks the model's turn complete: what is queued plays out without waiting for
        the prebuffer, and running dry afterwards is not an underrun."""
        self._native.end_turn(timeout)

    async def end_turn_async(self, timeout: float | None = None) -> None:
        """Awaitable :meth:`end_turn` that never blocks the event loop: when the buffer is
        too full to take the turn's tail, it retries between short sleeps, up to
        ``timeout`` seconds, then raises :class:`~duplex.errors.PlaybackFullError`."""
        await self._retry_until_room(
            lambda: self._native.end_turn(0.0), timeout, "end_turn() could not queue the turn's tail"
        )

    async def _retry_until_room(self, attempt: Callable[[], None], timeout: object, what: str) -> None:
        """Runs ``attempt`` (a non-blocking try that raises PlaybackFullError when the buffer
        has no room) between short sleeps on the event loop, up to ``timeout`` seconds, then
        raises PlaybackFullError with the blocking call's message."""
        seconds = timeout_s(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            try:
                attempt()
                return
            except PlaybackFullError:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise PlaybackFullError(playback_full_message(seconds, what)) from None
            # Cancellation can only land here, between attempts, when nothing is queued.
            await asyncio.sleep(_PLAY_POLL_S if remaining is None else min(_PLAY_POLL_S, remaining))

    def drain(self, timeout: float | None = None) -> bool:
        """Plays out everything queued and waits until the device has played it: ends the
        turn (so audio short of the prebuffer plays too), then waits up to ``timeout``
        seconds (``None`` = as long as it takes) with the GIL released. Returns ``True`` when
        nothing is left to play, ``False`` if audio was still queued at the timeout."""
        return self._native.drain(timeout)

    def interrupt(self) -> InterruptReport:
        """Barge-in: flush playback at the device's next period after a short fade.

        One atomic store; returns at once. Audio played after this call (the next turn) is
        kept. Chunks of the interrupted turn that still arrive must not be played."""
        return InterruptReport(**self._native.interrupt())

    # -- echo cancellation -------------------------------------------------------------

    @property
    def echo_cancellation(self) -> bool:
        """Whether echo cancellation is on. Assign to switch it at run time (from the next
        10 ms of capture); it acts only while both an input and an output are open."""
        return self._native.echo_cancellation

    @echo_cancellation.setter
    def echo_cancellation(self, enabled: bool) -> None:
        self._native.set_echo_cancellation(bool(enabled))

    def set_echo_options(
        self, backend: str = "sonora", noise_suppression: bool = True, high_pass_filter: bool = True
    ) -> None:
        """Changes the canceller (``"sonora"`` or ``"aec3"``) and its noise suppressor and
        high-pass filter, at run time too (a new backend converges again within about 1 s)."""
        self._native.set_echo_options(backend, noise_suppression, high_pass_filter)

    # -- device events -----------------------------------------------------------------

    def next_device_event(self, timeout: float | None = None) -> DeviceEvent | None:
        """The oldest device event not taken yet: ``device_lost`` when a real device died
        (the sound server stopped, the device was unplugged; the engine keeps its buffers and
        reopens it by itself, with backoff) and ``device_restored`` when it runs again.
        Waits up to ``timeout`` seconds (``None`` = until one comes) with the GIL released;
        ``None`` on timeout. Events queue up in order until taken (the oldest beyond 256
        are dropped). While the device is gone, :meth:`read` and :meth:`play` raise
        :class:`~duplex.errors.DeviceLostError` after their timeout."""
        event = self._native.next_device_event(timeout)
        return None if event is None else DeviceEvent(**event)

    async def next_device_event_async(self, timeout: float | None = None) -> DeviceEvent | None:
        """Awaitable :meth:`next_device_event`. It never blocks the event loop (each check
        is non-blocking, every 50 ms), and cancelling it loses no event."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(0.0, timeout)
        while True:
            event = self.next_device_event(0.0)
            if event is not None:
                return event
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            await asyncio.sleep(_EVENT_POLL_S if remaining is None else min(_EVENT_POLL_S, remaining))

    # -- state -------------------------------------------------------------------------

    def stats(self) -> Stats:
        """A snapshot of every counter; cheap, from any thread."""
        return Stats(**self._native.stats())

    def recording(self) -> np.ndarray:
        """The virtual device's output (``output="memory"``) as float32, shape
        ``(frames, channels)``, at the device rate."""
        return self._native.recording()

    @property
    def device_params(self) -> dict[str, int]:
        """The rates, channel counts and period the devices run at."""
        return self._native.device_params()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "running" if self.running else "stopped"
        kind = "virtual" if self.virtual_device else "cpal"
        return f"<duplex.AudioEngine {kind} {state}>"


