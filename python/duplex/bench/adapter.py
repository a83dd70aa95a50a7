"""A thin adapter that gives :class:`duplex.AudioEngine` the baseline's benchmark interface.

The engine runs on duplex's own :class:`~duplex.VirtualDevice` (real-time pace, output in
memory). The device thread is Rust and renders period ``k`` at ``start + k * P``; the
adapter estimates ``start`` on the ``perf_counter()`` clock by polling
``stats().frames_rendered`` right after the start (while the interpreter is idle), so that
output frames and input periods map to times exactly as the baseline's card model does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..devices import VirtualDevice
from ..engine import AudioEngine

__all__ = ["DuplexAdapter"]


class DuplexAdapter:
    """:class:`duplex.AudioEngine` behind the benchmark interface.

    Parameters
    ----------
    rate, period_frames
        The virtual device's rate and period (the baseline's card uses the same).
    input_signal
        Float32 mono microphone signal at ``rate`` (silence after its end).
    prebuffer_ms, fade_ms
        The engine's jitter buffer and interrupt fade (its defaults: 200 ms, 5 ms).
    """

    name = "duplex"

    def __init__(
        self,
        *,
        rate: int = 48_000,
        period_frames: int = 480,
        input_signal: np.ndarray | None = None,
        prebuffer_ms: int = 200,
        fade_ms: float = 5.0,
    ) -> None:
        self.rate = rate
        self.period_frames = period_frames
        self.prebuffer_ms = prebuffer_ms
        self.fade_ms = fade_ms
        self._input_signal = input_signal
        self.engine: AudioEngine | None = None
        self.t0: float = 0.0
        #: How long after ``engine.start()`` was called the device clock started, in seconds.
        self.t0_after_start_call_s: float = 0.0
        self._recording: np.ndarray | None = None
        #: ``(perf_counter, frames_rendered)`` noted just before each ``interrupt()``.
        self.interrupt_marks: list[tuple[float, int]] = []

    def start(self, poll_s: float = 0.06) -> "DuplexAdapter":
        """Starts the engine and estimates when its device clock started. Returns ``self``."""
        device = VirtualDevice(
            sample_rate=self.rate,
            channels=1,
            period_frames=self.period_frames,
            input=None if self._input_signal is None else np.asarray(self._input_signal, np.float32),
            output="memory",
            speed=1.0,
        )
        self.engine = AudioEngine(backend=device, prebuffer_ms=self.prebuffer_ms, fade_ms=self.fade_ms)
        before = time.perf_counter()
        self.engine.start()
        self.t0 = self._estimate_start(before, poll_s)
        return self

    def _estimate_start(self, before: float, poll_s: float) -> float:
        # Period k is rendered no earlier than start + k*P, so every sample (t, F) bounds
        # start <= t - (F - P) / rate; the minimum over many samples is tight.
        assert self.engine is not None
        upper = float("inf")
        end = before + poll_s
        while True:
            t = time.perf_counter()
            rendered = self.engine.stats().frames_rendered
            if rendered:
                upper = min(upper, t - (rendered - self.period_frames) / self.rate)
            if t > end and upper != float("inf"):
                break
        estimate = max(before, upper)
        self.t0_after_start_call_s = estimate - before
        return estimate

    def stop(self) -> None:
        """Stops the engine, keeps its recording, and closes it."""
        if self.engine is None:
            return
        self.engine.stop()
        self._recording = np.asarray(self.engine.recording()[:, 0], dtype=np.float32)
        self.engine.close()
        self.engine = None

    def __enter__(self) -> "DuplexAdapter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _live(self) -> AudioEngine:
        if self.engine is None:
            raise RuntimeError("start() the adapter first")
        return self.engine

    def play(self, pcm: bytes | bytearray | memoryview | np.ndarray, timeout: float | None = None) -> None:
        """``AudioEngine.play``: 24 kHz s16le mono."""
        self._live().play(pcm, timeout)

    def end_turn(self) -> None:
        """``AudioEngine.end_turn``."""
        self._live().end_turn()

    def interrupt(self) -> None:
        """``AudioEngine.interrupt`` (the report is not needed here).

        Notes ``(perf_counter, frames_rendered)`` just before the call in
        :attr:`interrupt_marks`, to check the time-to-frame mapping against the engine's
        own counter."""
        engine = self._live()
        self.interrupt_marks.append((time.perf_counter(), engine.stats().frames_rendered))
        engine.interrupt()

    def clock_check_ms(self) -> list[float]:
        """For each interrupt, the mapped playhead minus ``frames_rendered``, in ms.

        Period ``k`` is rendered at ``t0 + k * P``, so on schedule the value lies in
        ``[-P, 0]`` (-10..0 ms at 48 kHz / 480); outside that range the device thread was
        late (or early) by the excess."""
        return [((t - self.t0) * self.rate - frames) * 1000.0 / self.rate for t, frames in self.interrupt_marks]

    def read(self, timeout: float | None = None) -> bytes | None:
        """``AudioEngine.read``: 20 ms of 16 kHz s16le mono, or ``None`` on timeout."""
        return self._live().read(timeout)

    def device_frame_at(self, t: float) -> float:
        """The output frame the device emits at ``perf_counter()`` time ``t``."""
        return (t - self.t0) * self.rate

    def input_frame_time(self, frame: int) -> float:
        """When input frame ``frame`` is handed to the engine (its period's callback)."""
        return self.t0 + (frame // self.period_frames) * self.period_frames / self.rate

    def committed_frames(self) -> int:
        """Output frames already rendered: audio queued from now on lands after them."""
        return int(self._live().stats().frames_rendered)

    def input_frame_lost(self, frame: int) -> bool:
        """Always ``False``: the engine counts capture overflows but cannot say which frames
        (the harness checks ``capture_overflow_frames`` is 0)."""
        return False

    def recording(self) -> np.ndarray:
        """What the device played, float32 mono at the device rate."""
        if self._recording is not None:
            return self._recording
        return np.asarray(self._live().recording()[:, 0], dtype=np.float32)

    def handover_runs(self) -> list[np.ndarray]:
        """Empty: the engine exposes callback jitter as percentiles, not per callback."""
        return []

    def stats(self) -> dict[str, Any]:
        """The engine's counters in the harness's names, plus its jitter percentiles."""
        s = self._live().stats()
        return {
            "underruns": s.underruns,
            # The engine's underruns are all the ring running dry mid-turn (the producer was
            # late); its virtual device cannot starve (see the jitter figures instead).
            "underruns_dry": s.underruns,
            "underrun_silence_ms": s.underrun_silence_ms,
            "xruns": 0,
            "frames_played": s.frames_played,
            "capture_overflow_frames": s.capture_overflow_frames,
            "chunks_read": s.chunks_read,
            "callbacks": s.output_callbacks,
            "jitter_p99_ms": s.jitter_p99_ms,
            "jitter_max_ms": s.jitter_max_ms,
            "callback_p99_us": s.callback_p99_us,
        }
