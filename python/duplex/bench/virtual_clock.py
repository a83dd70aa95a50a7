"""A deterministic, timestamp-driven model of a sound card for the pure-Python baseline.

duplex's :class:`~duplex.VirtualDevice` is driven by a Rust thread that never takes the GIL.
A Python "device thread" cannot play that part honestly: it needs the GIL itself, so a
busy interpreter would delay the *model* of the hardware along with the code under test.
This module therefore does not simulate the hardware with a thread. It models it with a
clock and arithmetic, the way a sound card and ALSA behave:

* **Output.** The card plays device frame ``f`` at ``t0 + f / rate``, whatever happens.
  Software hands it audio in periods (a callback) or in blocks (a blocking write) into a
  hardware buffer of ``buffer_periods`` periods (2 = ALSA double buffering, PortAudio's
  ``latency='low'``; 4 = 40 ms at 48 kHz / 480, like ``latency='high'``). Audio handed over
  after the card needed it is late: the card has played out its buffer and inserted
  silence (an xrun). Lateness is computed from the hand-over timestamp alone, never by
  asking Python whether it was late. Everything the card plays, silence included, is kept,
  so the output signal can be analysed like duplex's ``recording()``.
* **Input.** Period ``k`` of the microphone signal becomes available at ``t0 + k * P``
  (the same convention as duplex's virtual device, which hands period ``k`` to its input
  callback at that time). The card's capture buffer holds ``capacity_periods``; a period
  that arrives while it is full is lost (an overrun), as on ALSA.

Both models are plain objects protected by a lock; callers pass ``time.perf_counter()``
timestamps, which makes them deterministic under test (pass any times you like).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GapEvent", "OutputModel", "InputModel"]


@dataclass
class GapEvent:
    """Silence the card inserted because audio came late.

    ``at_frame`` is the device frame where the silence starts, ``frames`` its length,
    ``late_s`` how late the hand-over was, and ``audible`` whether it cut into audio that
    was playing (counted as an underrun) rather than delaying the start of a turn or
    happening while idle (an xrun nobody hears).
    """

    at_frame: int
    frames: int
    late_s: float
    audible: bool


@dataclass
class OutputModel:
    """The playback half of the modelled card: a clock, a hardware buffer and what it played.

    The card starts at ``t0`` with its buffer primed with ``buffer_periods`` periods of
    silence (as PortAudio primes an output stream), so the first request for audio comes
    one period after the start.

    Parameters
    ----------
    t0
        ``time.perf_counter()`` of device frame 0.
    rate, period_frames, buffer_periods
        Device rate, frames per period, and the hardware buffer in periods (>= 1).
    """

    t0: float
    rate: int = 48_000
    period_frames: int = 480
    buffer_periods: int = 2
    end_frame: int = field(init=False)
    gaps: list[GapEvent] = field(init=False, default_factory=list)
    handovers: list[list[float]] = field(init=False, default_factory=list)
    _blocks: list[tuple[int, np.ndarray]] = field(init=False, default_factory=list)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.buffer_periods < 1:
            raise ValueError(f"buffer_periods must be >= 1, got {self.buffer_periods}")
        #: Device frame where the audio queued in the card ends (silence included).
        self.end_frame = self.buffer_periods * self.period_frames

    @property
    def period_s(self) -> float:
        """One period in seconds."""
        return self.period_frames / self.rate

    def frame_at(self, t: float) -> float:
        """The device frame the card is playing at time ``t`` (the playhead)."""
        return (t - self.t0) * self.rate

    def time_of(self, frame: float) -> float:
        """When the card plays device frame ``frame``."""
        return self.t0 + frame / self.rate

    def request_time(self) -> float:
        """When the card has room for one more period: a callback is due then."""
        with self._lock:
            room_at = self.end_frame - (self.buffer_periods - 1) * self.period_frames
        return self.time_of(room_at)

    def deliver(self, samples: np.ndarray, t: float, audible_if_late: bool) -> GapEvent | None:
        """Hands ``samples`` (float32 mono) to the card at time ``t``.

        If the card ran out of audio before ``t`` it has inserted silence from the end of
        its buffer up to ``t``; that gap is recorded (as an underrun when
        ``audible_if_late``) and the samples play from ``t`` on. Returns the gap, if any.
        """
        samples = np.asarray(samples, dtype=np.float32)
        with self._lock:
            gap = self._catch_up(t, audible_if_late)
            self._blocks.append((self.end_frame, samples))
            self.end_frame += len(samples)
        return gap

    def write_blocking(self, samples: np.ndarray, t: float, audible_if_late: bool) -> float:
        """A blocking write (PortAudio's ``Pa_WriteStream``, PyAudio's ``stream.write``).

        The call starts at ``t``; the C code then copies periods into the buffer as room
        appears, without the GIL. Returns the time at which the call returns: when the last
        frame has entered the ``buffer_periods``-period buffer. The caller sleeps until then
        with the GIL released, exactly as the real call would. The hand-over time of every
        period is recorded (for the interval-jitter statistics); a write that is not the
        continuation of the previous one (``audible_if_late`` false: a new turn) starts a new
        run of hand-overs, so idle time between turns does not count as jitter.
        """
        samples = np.asarray(samples, dtype=np.float32)
        n, p = len(samples), self.period_frames
        with self._lock:
            self._catch_up(t, audible_if_late)
            start = self.end_frame
            self._blocks.append((start, samples))
            self.end_frame += n
            # Period boundaries inside this write: each enters the buffer when there is room
            # for it (the playhead reached it minus the buffer), but not before the call.
            if not audible_if_late or not self.handovers:
                self.handovers.append([])
            run = self.handovers[-1]
            first = -(-start // p) * p
            for boundary in range(first, start + n, p):
                room = self.time_of(boundary - self.buffer_periods * p)
                run.append(max(t, room))
            done = self.time_of(self.end_frame - self.buffer_periods * p)
        return max(t, done)

    def _catch_up(self, t: float, audible: bool) -> GapEvent | None:
        playhead = self.frame_at(t)
        if playhead <= self.end_frame:
            return None
        frames = int(math.ceil(playhead - self.end_frame))
        gap = GapEvent(self.end_frame, frames, frames / self.rate, audible)
        self.gaps.append(gap)
        self.end_frame += frames
        return gap

    def underruns(self) -> tuple[int, float]:
        """Audible underruns and the milliseconds of silence they inserted."""
        with self._lock:
            audible = [g for g in self.gaps if g.audible]
        return len(audible), 1000.0 * sum(g.frames for g in audible) / self.rate

    def xruns(self) -> int:
        """Every time the card starved, audible or not."""
        with self._lock:
            return len(self.gaps)

    def recording(self, until_frame: int | None = None) -> np.ndarray:
        """What the card played, float32 mono, silence where it starved or idled."""
        with self._lock:
            total = self.end_frame if until_frame is None else int(until_frame)
            out = np.zeros(max(total, 0), dtype=np.float32)
            for start, block in self._blocks:
                if start >= total:
                    continue
                end = min(start + len(block), total)
                out[start:end] = block[: end - start]
        return out


class InputModel:
    """The capture half of the modelled card: a clock, a source signal and a small buffer.

    Period ``k`` (frames ``[k*P, (k+1)*P)`` of ``source``) becomes available at
    ``t0 + k * P / rate``. At most ``capacity_periods`` wait in the card; a period arriving
    while it is full is dropped and counted. ``take`` is how software gets them, oldest
    first. Beyond the end of ``source`` the microphone is silent.
    """

    def __init__(
        self,
        t0: float,
        source: np.ndarray | None,
        rate: int = 48_000,
        period_frames: int = 480,
        capacity_periods: int = 4,
    ) -> None:
        if capacity_periods < 1:
            raise ValueError(f"capacity_periods must be >= 1, got {capacity_periods}")
        self.t0 = t0
        self.rate = rate
        self.period_frames = period_frames
        self.capacity_periods = capacity_periods
        self._source = np.zeros(0, np.float32) if source is None else np.asarray(source, np.float32)
        self._held: deque[int] = deque()
        self._next_arrival = 0
        self.lost_periods: int = 0
        #: Indices of the periods dropped because the buffer was full.
        self.lost_period_indices: set[int] = set()
        self.taken_periods: int = 0
        self._lock = threading.Lock()

    @property
    def period_s(self) -> float:
        """One period in seconds."""
        return self.period_frames / self.rate

    def arrival_time(self, period: int) -> float:
        """When period ``period`` becomes available to software."""
        return self.t0 + period * self.period_s

    def frame_arrival_time(self, frame: int) -> float:
        """When the period holding source frame ``frame`` becomes available."""
        return self.arrival_time(frame // self.period_frames)

    def _advance(self, t: float) -> None:
        while self.arrival_time(self._next_arrival) <= t:
            if len(self._held) < self.capacity_periods:
                self._held.append(self._next_arrival)
            else:
                self.lost_periods += 1
                self.lost_period_indices.add(self._next_arrival)
            self._next_arrival += 1

    def available(self, t: float) -> int:
        """Periods waiting in the card at time ``t``."""
        with self._lock:
            self._advance(t)
            return len(self._held)

    def ready_time(self, periods: int, t: float) -> float:
        """When at least ``periods`` periods will be waiting (``<= t`` if they already are)."""
        with self._lock:
            self._advance(t)
            missing = periods - len(self._held)
            if missing <= 0:
                return t
            return self.arrival_time(self._next_arrival + missing - 1)

    def take(self, t: float, periods: int = 1) -> list[tuple[int, np.ndarray]]:
        """Removes up to ``periods`` periods available at ``t``: ``(index, samples)`` pairs."""
        with self._lock:
            self._advance(t)
            out = []
            for _ in range(min(periods, len(self._held))):
                k = self._held.popleft()
                out.append((k, self._period_samples(k)))
            self.taken_periods += len(out)
            return out

    def _period_samples(self, k: int) -> np.ndarray:
        p = self.period_frames
        chunk = self._source[k * p : (k + 1) * p]
        if len(chunk) < p:
            chunk = np.concatenate([chunk, np.zeros(p - len(chunk), np.float32)])
        return chunk

    @property
    def lost_frames(self) -> int:
        """Frames dropped because the capture buffer was full."""
        return self.lost_periods * self.period_frames
