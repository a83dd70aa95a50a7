"""Energy voice-activity detection on the 16 kHz input stream: duplex's one detector, used
by the Live API emulator (server VAD) and by :class:`~duplex.live.LiveConversation` in manual
activity mode (client VAD), with the same defaults.

A frame (20 ms by default) is *voiced* when its RMS level is above a threshold in dBFS
(-40 dBFS by default). Speech starts when ``start_ms`` of consecutive voiced frames have
arrived and ends after ``end_ms`` of consecutive unvoiced frames. Positions are counted
in samples of the input stream, so results do not depend on network timing. This is a
level detector, not a speech recogniser: any loud enough sound counts as speech.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VadConfig:
    """Tuning of :class:`EnergyVad`.

    Attributes:
        rate_hz: sample rate of the input.
        frame_ms: analysis frame length.
        threshold_dbfs: RMS level above which a frame is voiced (0 dBFS = full-scale square).
        start_ms: voiced time needed to confirm the start of speech (``prefixPaddingMs``).
        end_ms: unvoiced time needed to confirm the end of speech (``silenceDurationMs``).
    """

    rate_hz: int = 16_000
    frame_ms: int = 20
    threshold_dbfs: float = -40.0
    start_ms: int = 100
    end_ms: int = 500

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.frame_ms <= 0:
            raise ValueError("rate_hz and frame_ms must be positive")
        if self.start_ms < 0 or self.end_ms <= 0:
            raise ValueError("start_ms must be >= 0 and end_ms > 0")

    @property
    def frame_samples(self) -> int:
        """Samples per analysis frame."""
        return self.rate_hz * self.frame_ms // 1000

    def with_setup(self, prefix_padding_ms: int | None, silence_duration_ms: int | None,
                   start_sensitivity: str | None) -> VadConfig:
        """This config adjusted by a session's ``automaticActivityDetection`` settings.

        ``prefixPaddingMs`` and ``silenceDurationMs`` replace ``start_ms`` and ``end_ms``;
        ``START_SENSITIVITY_LOW`` raises the threshold by 6 dB.
        """
        threshold = self.threshold_dbfs + (6.0 if start_sensitivity == "START_SENSITIVITY_LOW" else 0.0)
        return VadConfig(
            rate_hz=self.rate_hz,
            frame_ms=self.frame_ms,
            threshold_dbfs=threshold,
            start_ms=self.start_ms if prefix_padding_ms is None else max(0, prefix_padding_ms),
            end_ms=self.end_ms if silence_duration_ms is None else max(self.frame_ms, silence_duration_ms),
        )


@dataclass(frozen=True)
class VadEvent:
    """A confirmed speech boundary.

    Attributes:
        kind: ``"start"`` or ``"end"``.
        position: sample index where speech began (start) or where the last voiced frame
            ended (end).
        confirmed_at: sample index at which the event was confirmed (the end of the frame
            that completed ``start_ms`` / ``end_ms``).
    """

    kind: str
    position: int
    confirmed_at: int


class EnergyVad:
    """Streaming energy VAD; feed int16 samples, get :class:`VadEvent` items back."""

    def __init__(self, config: VadConfig | None = None) -> None:
        self.config: VadConfig = config or VadConfig()
        self._frame = self.config.frame_samples
        self._start_frames = max(1, math.ceil(self.config.start_ms / self.config.frame_ms))
        self._end_frames = max(1, math.ceil(self.config.end_ms / self.config.frame_ms))
        # Mean square of a frame at the threshold, in int16 units.
        self._threshold_ms = (32768.0 * 10 ** (self.config.threshold_dbfs / 20)) ** 2
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_seen = 0
        self._in_speech = False
        self._voiced_run = 0
        self._silent_run = 0
        self._last_voiced_end = 0

    @property
    def in_speech(self) -> bool:
        """True between a start and its end event."""
        return self._in_speech

    @property
    def samples_seen(self) -> int:
        """Samples analysed so far (whole frames only)."""
        return self._frames_seen * self._frame

    @property
    def speech_end_position(self) -> int:
        """Sample index where the last voiced frame ended."""
        return self._last_voiced_end

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Analyses more input (int16 mono) and returns the boundaries it confirmed."""
        samples = np.asarray(samples, dtype=np.int16)
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        n = samples.size // self._frame
        self._pending = samples[n * self._frame :].copy()
        if n == 0:
            return []
        frames = samples[: n * self._frame].astype(np.float64).reshape(n, self._frame)
        voiced = (frames * frames).mean(axis=1) > self._threshold_ms
        events: list[VadEvent] = []
        for v in voiced:
            index = self._frames_seen
            self._frames_seen += 1
            frame_end = self._frames_seen * self._frame
            if v:
                self._last_voiced_end = frame_end
            if not self._in_speech:
                self._voiced_run = self._voiced_run + 1 if v else 0
                if self._voiced_run >= self._start_frames:
                    self._in_speech = True
                    self._silent_run = 0
                    onset = (index + 1 - self._voiced_run) * self._frame
                    events.append(VadEvent("start", onset, frame_end))
            else:
                self._silent_run = 0 if v else self._silent_run + 1
                if self._silent_run >= self._end_frames:
                    self._in_speech = False
                    self._voiced_run = 0
                    events.append(VadEvent("end", self._last_voiced_end, frame_end))
        return events

    def force_end(self) -> VadEvent | None:
        """Ends current speech now (``audioStreamEnd``); returns the end event if in speech."""
        if not self._in_speech:
            return None
        self._in_speech = False
        self._voiced_run = 0
        self._silent_run = 0
        return VadEvent("end", self._last_voiced_end, self.samples_seen)
