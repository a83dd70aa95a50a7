"""Pure-Python Live clients, written the way they are today, on a modelled sound card.

Two designs, both behind the interface the harness drives (the same one
:class:`duplex.bench.adapter.DuplexAdapter` gives :class:`duplex.AudioEngine`):

* :class:`QueueBaseline` is the Gemini cookbook client (``Get_started_LiveAPI.py``): server
  chunks go into a queue, a consumer thread hands each chunk whole to a *blocking* device
  write (PyAudio's ``stream.write``), and on barge-in the queue is drained; audio already
  inside the write keeps playing. The microphone is read with blocking reads.
* :class:`CallbackBaseline` is the python-sounddevice / LiveKit ``MediaDevices`` design: a
  Python device callback pops samples from a ``collections.deque`` and pushes captured
  periods to a buffer the reader takes 20 ms chunks from. Barge-in clears the deque.

The card is :mod:`duplex.bench.virtual_clock`: 48 kHz by default (like duplex's virtual
device), so the baselines resample in Python, with the simple methods such clients use.

The interface: ``start()``, ``stop()``, ``play(pcm)`` (24 kHz s16le mono bytes),
``end_turn()``, ``interrupt()``, ``read(timeout)`` (20 ms of 16 kHz s16le mono, or
``None``), ``stats()`` (a dict of counters), ``recording()`` (what the card played, float32
mono at the device rate), ``device_frame_at(t)``, ``input_frame_time(frame)``,
``input_frame_lost(frame)``, ``committed_frames()`` (output frames already handed to the
card) and ``handover_runs()`` (timestamps at which periods were handed to the card).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from .virtual_clock import InputModel, OutputModel

__all__ = ["CallbackBaseline", "QueueBaseline", "simple_resample", "PLAY_RATE_HZ", "CAPTURE_RATE_HZ"]

#: Rate of the model's audio (what ``play`` takes).
PLAY_RATE_HZ = 24_000
#: Rate of the capture chunks (what ``read`` returns).
CAPTURE_RATE_HZ = 16_000


def simple_resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resamples one block the simple way Python clients do: no state across blocks.

    Integer down-sampling averages each group of samples (a box filter, then decimation),
    integer up-sampling repeats samples, anything else interpolates linearly. Returns
    float32.
    """
    x = np.asarray(x, dtype=np.float32)
    if from_hz == to_hz or len(x) == 0:
        return x.copy()
    if from_hz % to_hz == 0:
        step = from_hz // to_hz
        usable = len(x) - len(x) % step
        return x[:usable].reshape(-1, step).mean(axis=1, dtype=np.float32)
    if to_hz % from_hz == 0:
        return np.repeat(x, to_hz // from_hz)
    n_out = int(round(len(x) * to_hz / from_hz))
    positions = np.arange(n_out, dtype=np.float64) * (from_hz / to_hz)
    return np.interp(positions, np.arange(len(x)), x).astype(np.float32)


def _pcm_to_float(pcm: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(pcm, np.ndarray):
        data = pcm.astype(np.int16, copy=False)
    else:
        data = np.frombuffer(bytes(pcm), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def _float_to_pcm(x: np.ndarray) -> bytes:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2").tobytes()


class _BaselineCommon:
    """What both baselines share: the card, the capture chunking and the stats."""

    #: Short name used in tables.
    name: str = "baseline"

    def __init__(
        self,
        *,
        rate: int = 48_000,
        period_frames: int = 480,
        buffer_periods: int = 2,
        input_signal: np.ndarray | None = None,
        chunk_ms: int = 20,
    ) -> None:
        self.rate = rate
        self.period_frames = period_frames
        self.buffer_periods = buffer_periods
        self.chunk_ms = chunk_ms
        self.chunk_device_frames: int = rate * chunk_ms // 1000
        self._input_signal = input_signal
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.out: OutputModel | None = None
        self.inp: InputModel | None = None
        self._chunks_read = 0
        self._app_underruns = 0
        self._app_silence_frames = 0
        self._frames_played = 0

    # -- lifecycle ---------------------------------------------------------------------

    def _input_capacity(self) -> int:
        return self.buffer_periods

    def start(self) -> "_BaselineCommon":
        """Starts the card's clock and the client's threads. Returns ``self``."""
        t0 = time.perf_counter()
        self.out = OutputModel(t0, self.rate, self.period_frames, self.buffer_periods)
        self.inp = InputModel(t0, self._input_signal, self.rate, self.period_frames, self._input_capacity())
        self._stop.clear()
        for target, name in self._thread_targets():
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _thread_targets(self) -> list[tuple[Any, str]]:
        return []

    def stop(self) -> None:
        """Stops the client's threads; the recording stays readable."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        self._threads.clear()

    def __enter__(self) -> "_BaselineCommon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clock mapping -----------------------------------------------------------------

    def device_frame_at(self, t: float) -> float:
        """The output frame the card is playing at ``perf_counter()`` time ``t``."""
        assert self.out is not None, "start() first"
        return self.out.frame_at(t)

    def input_frame_time(self, frame: int) -> float:
        """When input frame ``frame`` becomes available to software (its period's arrival)."""
        assert self.inp is not None, "start() first"
        return self.inp.frame_arrival_time(frame)

    def recording(self) -> np.ndarray:
        """What the card played so far: float32 mono at the device rate."""
        assert self.out is not None, "start() first"
        return self.out.recording(int(self.out.frame_at(time.perf_counter())))

    def handover_runs(self) -> list[np.ndarray]:
        """Runs of timestamps at which periods reached the card (for interval jitter)."""
        return []

    def committed_frames(self) -> int:
        """Output frames already handed to the card: audio queued from now on lands after them."""
        assert self.out is not None, "start() first"
        return int(self.out.end_frame)

    def input_frame_lost(self, frame: int) -> bool:
        """Whether input frame ``frame`` was dropped by the card (capture overrun)."""
        assert self.inp is not None, "start() first"
        return frame // self.period_frames in self.inp.lost_period_indices

    def _to_chunk(self, frames: np.ndarray) -> bytes:
        self._chunks_read += 1
        return _float_to_pcm(simple_resample(frames, self.rate, CAPTURE_RATE_HZ))

    def stats(self) -> dict[str, Any]:
        """Counters: ``underruns`` and ``underrun_silence_ms`` (audible starvation of the
        card plus running dry mid-turn), ``underruns_dry`` (of those, the client's buffer
        running dry: the producer was late, not the device path), ``xruns`` (every starvation, idle ones included),
        ``frames_played``, ``capture_overflow_frames``, ``chunks_read``, ``callbacks``."""
        assert self.out is not None and self.inp is not None, "start() first"
        hw_underruns, hw_silence_ms = self.out.underruns()
        return {
            "underruns": hw_underruns + self._app_underruns,
            "underruns_dry": self._app_underruns,
            "underrun_silence_ms": hw_silence_ms + 1000.0 * self._app_silence_frames / self.rate,
            "xruns": self.out.xruns(),
            "frames_played": self._frames_played,
            "capture_overflow_frames": self.inp.lost_frames,
            "chunks_read": self._chunks_read,
        }


class QueueBaseline(_BaselineCommon):
    """The cookbook client: a queue of server chunks, blocking writes, flush by draining.

    ``play`` puts the chunk in a :class:`queue.Queue` (the cookbook's unbounded
    ``audio_in_queue``). A consumer thread takes chunks one by one, converts 24 kHz int16 to
    the device rate in Python and hands each to a blocking write that returns once the
    chunk's last frame is in the card's buffer (the wait itself holds no GIL, as in
    PortAudio). ``interrupt`` drains the queue with ``get_nowait``; the chunk inside the
    write, and the card's buffer, still play. ``read`` is a blocking read of 20 ms of
    device frames, resampled to 16 kHz in Python.
    """

    name = "cookbook"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._queue: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self._turn = 0
        self._last_written_turn = -1
        self._read_lock = threading.Lock()

    def _input_capacity(self) -> int:
        # PortAudio sizes a blocking stream's buffer to hold a whole read plus its latency.
        return self.buffer_periods + math.ceil(self.chunk_device_frames / self.period_frames)

    def _thread_targets(self) -> list[tuple[Any, str]]:
        return [(self._consume, "cookbook-play")]

    def play(self, pcm: bytes | bytearray | memoryview | np.ndarray, timeout: float | None = None) -> None:
        """Queues one server chunk (24 kHz s16le mono)."""
        data = pcm.tobytes() if isinstance(pcm, (memoryview, np.ndarray)) else bytes(pcm)
        self._queue.put_nowait((self._turn, data))

    def end_turn(self) -> None:
        """The model's turn is complete; the next chunk starts a new turn."""
        self._turn += 1

    def interrupt(self) -> None:
        """Barge-in as in the cookbook: drain the queue; what was written keeps playing."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._turn += 1

    def _consume(self) -> None:
        assert self.out is not None
        while not self._stop.is_set():
            try:
                turn, pcm = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            samples = simple_resample(_pcm_to_float(pcm), PLAY_RATE_HZ, self.rate)
            same_turn = turn == self._last_written_turn
            self._last_written_turn = turn
            returns_at = self.out.write_blocking(samples, time.perf_counter(), audible_if_late=same_turn)
            self._frames_played += len(samples)
            self._stop.wait(max(0.0, returns_at - time.perf_counter()))

    def read(self, timeout: float | None = None) -> bytes | None:
        """Blocking read of one 20 ms chunk (16 kHz s16le mono); ``None`` on timeout."""
        assert self.inp is not None, "start() first"
        periods = math.ceil(self.chunk_device_frames / self.period_frames)
        with self._read_lock:
            now = time.perf_counter()
            deadline = math.inf if timeout is None else now + timeout
            ready = self.inp.ready_time(periods, now)
            if ready > deadline:
                self._stop.wait(max(0.0, deadline - now))
                return None
            if self._stop.wait(max(0.0, ready - now)):
                return None
            got = self.inp.take(max(time.perf_counter(), ready), periods)
            frames = np.concatenate([x for _, x in got])[: self.chunk_device_frames]
            return self._to_chunk(frames)

    def handover_runs(self) -> list[np.ndarray]:
        """Per turn, the times at which each period entered the card's buffer.

        The first ``buffer_periods`` hand-overs of a turn fill the empty buffer at once
        (like the priming of a stream) and are left out.
        """
        assert self.out is not None, "start() first"
        skip = self.buffer_periods
        return [np.asarray(run[skip:]) for run in self.out.handovers if len(run) > skip + 1]


class CallbackBaseline(_BaselineCommon):
    """A Python device callback over a ``collections.deque`` of samples.

    The card requests a period whenever its buffer has room (``buffer_periods`` periods;
    2 ~ ``latency='low'``, 4 ~ ``latency='high'``). The request is served by a Python
    thread standing in for PortAudio's callback thread: it must take the GIL to run the
    callback, exactly like the real one. How late the period reached the card is computed
    from timestamps by the card model. The callback also receives one captured period per
    call (a full-duplex stream) and appends it to the reader's buffer.
    """

    name = "callback"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._play: deque[float] = deque()
        self._turn_open = False
        self._dry = False
        self._prev_audio = False
        self._callback_times: list[float] = []
        self._capture: deque[np.ndarray] = deque()
        self._capture_frames = 0
        self._cond = threading.Condition()
        if self.buffer_periods != 2:
            self.name: str = f"callback-{self.buffer_periods}p"

    def _input_capacity(self) -> int:
        return self.buffer_periods + 1

    def _thread_targets(self) -> list[tuple[Any, str]]:
        return [(self._device_thread, "callback-device")]

    def play(self, pcm: bytes | bytearray | memoryview | np.ndarray, timeout: float | None = None) -> None:
        """Converts a server chunk to the device rate and appends its samples to the deque."""
        samples = simple_resample(_pcm_to_float(pcm), PLAY_RATE_HZ, self.rate)
        self._play.extend(samples.tolist())
        self._turn_open = True

    def end_turn(self) -> None:
        """The turn is complete: running dry from now on is not an underrun."""
        self._turn_open = False

    def interrupt(self) -> None:
        """Barge-in: clears the deque; the periods already in the card still play."""
        self._turn_open = False
        self._play.clear()

    def _device_thread(self) -> None:
        assert self.out is not None and self.inp is not None
        while True:
            delay = self.out.request_time() - time.perf_counter()
            if delay > 0 and self._stop.wait(delay):
                return
            if self._stop.is_set():
                return
            t_callback = time.perf_counter()
            self._callback_times.append(t_callback)
            captured = self.inp.take(t_callback, 1)
            outdata, has_audio = self._callback(captured)
            # Late only matters if it cut into audio: the previous period and this one both
            # carried the turn's samples.
            self.out.deliver(outdata, time.perf_counter(), audible_if_late=has_audio and self._prev_audio)
            self._prev_audio = has_audio

    def _callback(self, captured: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, bool]:
        """The user's callback: capture in, one period of playback out."""
        if captured:
            with self._cond:
                for _, frames in captured:
                    self._capture.append(frames)
                    self._capture_frames += len(frames)
                self._cond.notify_all()
        n = self.period_frames
        outdata = np.zeros(n, dtype=np.float32)
        take = min(n, len(self._play))
        if take:
            popleft = self._play.popleft
            outdata[:take] = [popleft() for _ in range(take)]
            self._frames_played += take
        if take < n and self._turn_open and (take or self._prev_audio or self._dry):
            if not self._dry:
                self._app_underruns += 1
                self._dry = True
            self._app_silence_frames += n - take
        elif take == n or not self._turn_open:
            self._dry = False
        return outdata, take > 0

    def read(self, timeout: float | None = None) -> bytes | None:
        """The next 20 ms chunk (16 kHz s16le mono) the callback captured; ``None`` on timeout."""
        need = self.chunk_device_frames
        with self._cond:
            if not self._cond.wait_for(lambda: self._capture_frames >= need or self._stop.is_set(), timeout):
                return None
            if self._capture_frames < need:
                return None
            parts, got = [], 0
            while got < need:
                block = self._capture.popleft()
                if got + len(block) > need:
                    keep = need - got
                    self._capture.appendleft(block[keep:])
                    block = block[:keep]
                parts.append(block)
                got += len(block)
            self._capture_frames -= need
        return self._to_chunk(np.concatenate(parts))

    def stop(self) -> None:
        """Stops the device thread and wakes a waiting reader."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        super().stop()

    def handover_runs(self) -> list[np.ndarray]:
        """The start time of every callback (one run)."""
        return [np.asarray(self._callback_times)]

    def stats(self) -> dict[str, Any]:
        """The common counters plus ``callbacks``."""
        out = super().stats()
        out["callbacks"] = len(self._callback_times)
        return out
