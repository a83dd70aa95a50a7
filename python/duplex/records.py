"""The records :class:`~duplex.AudioEngine` returns: :class:`Stats`,
:class:`InterruptReport` and :class:`DeviceEvent`.

Plain frozen dataclasses built from the dicts the native module hands out (their fields are
checked against the engine's own field lists by tests/test_binding_contract.py). They import
nothing heavy, so status lines and reports can use them without loading the engine. Import
them from :mod:`duplex` or :mod:`duplex.engine`, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = ["DeviceEvent", "DeviceEventKind", "InterruptReport", "Stats"]

#: What happened to the devices (:meth:`~duplex.AudioEngine.next_device_event`).
DeviceEventKind = Literal["device_lost", "device_restored"]


@dataclass(frozen=True)
class InterruptReport:
    """What :meth:`~duplex.AudioEngine.interrupt` cut off.

    ``heard_ms`` is how much of the interrupted turn's audio had been played to the
    listener (in the 24 kHz domain), so a transcript can be cut where the user barged in.
    """

    heard_ms: float
    heard_frames: int
    received_ms: float
    discarded_ms: float


@dataclass(frozen=True)
class DeviceEvent:
    """A real device was lost or came back (see :meth:`~duplex.AudioEngine.next_device_event`).

    ``at_s`` is seconds since the engine was made; for ``device_restored``, ``outage_ms``
    is how long the device was gone and ``attempts`` how many reopenings it took.
    """

    kind: DeviceEventKind
    at_s: float
    message: str
    output_device: str
    input_device: str
    outage_ms: float
    attempts: int


@dataclass(frozen=True)
class Stats:
    """A snapshot of the engine's counters (see :meth:`~duplex.AudioEngine.stats`).

    Frame counts are at the device rate; ``*_ms`` are milliseconds, ``*_us`` microseconds,
    ``*_dbfs`` decibels relative to full scale (-120 for digital silence). Callback timing is
    of the output callback unless the name says ``input``; jitter is the distance of each
    callback interval from the nominal period. ``period_frames`` is what the device really
    delivers per callback once it runs. ``device_errors`` counts error episodes (a burst of
    callbacks within 100 ms is one); ``device_error_callbacks`` counts every one.

    Playback accounting, in device frames: ``frames_pushed = frames_played + frames_flushed
    + playback_buffered_frames``, exactly when the engine is idle or stopped (while it runs
    the terms are read microseconds apart). Flushed audio is what an interrupt or ``stop()``
    discarded unplayed. ``nonfinite_samples`` counts captured NaN/inf samples (a broken
    driver, a float WAV or an array), replaced by silence before they reach the resampler.

    Below the engine's ring (``device_*``, ``output_*``/``input_*`` of the device): what the
    host granted (``*_period_frames``, ``*_delay_ms``: read back from the streams, against
    ``latency_requested_ms``), and every gap a listener hears that the ring never saw:
    ``output_device_underruns`` (the server played silence, from the device's frame clock)
    and ``input_device_overruns``, each with the milliseconds lost, next to the xruns the
    backend itself reported. On host ``"pulse"`` they also count the server cycles a
    server skipped with the queue full (PipeWire does, silently), found from the stream's
    position against the wall clock in windows of 0.2 s or two buffers: two such losses in
    one window count once, with their summed milliseconds. ``underruns`` counts the engine's own ring running dry;
    ``jitter_buffer_ms`` is the adaptive prebuffer now. ``*_thread`` says whether the device
    threads run at real-time priority. ``host`` is the audio system (``"alsa"``, ``"pulse"``,
    ``"virtual"``) with the device ids, ``output_buffer_ms`` the buffer it granted
    (PulseAudio's tlength; 0 where the host does not say), and
    ``device_rewrites``/``device_rewound_ms`` count interrupts that took back audio the server
    already held (host ``"pulse"``). On the virtual device ``device_state`` is
    ``"virtual"``: its clock has no host below it and never loses audio.
    """

    input_rate_hz: int
    output_rate_hz: int
    input_channels: int
    output_channels: int
    period_frames: int
    frames_captured: int
    capture_overflows: int
    capture_overflow_frames: int
    nonfinite_samples: int
    chunks_read: int
    frames_played: int
    frames_rendered: int
    underruns: int
    underrun_silence_ms: float
    flushes: int
    flushed_ms: float
    frames_pushed: int
    frames_flushed: int
    playback_buffered_frames: int
    output_callbacks: int
    input_callbacks: int
    callback_p50_us: float
    callback_p99_us: float
    callback_max_us: float
    input_callback_p99_us: float
    input_callback_max_us: float
    jitter_p99_ms: float
    jitter_max_ms: float
    input_jitter_p99_ms: float
    input_jitter_max_ms: float
    playback_buffered_ms: float
    capture_buffered_ms: float
    input_rms_dbfs: float
    input_peak_dbfs: float
    output_rms_dbfs: float
    output_peak_dbfs: float
    device_errors: int
    device_error_callbacks: int
    last_device_error: str
    turn_played_ms: float
    turn_received_ms: float
    input_ended: bool
    echo_cancellation: bool
    echo_backend: str
    echo_frames: int
    echo_erle_db: float
    echo_delay_ms: float
    echo_reference_late: int
    echo_reference_dropped: int
    echo_realignments: int
    echo_shifts: int
    echo_errors: int
    echo_cost_mean_us: float
    echo_cost_p99_us: float
    echo_cost_max_us: float
    device_state: str
    device_lost_reason: str
    device_losses: int
    device_restores: int
    latency_requested_ms: float
    output_period_frames: int
    input_period_frames: int
    host: str
    output_device: str
    input_device: str
    output_buffer_ms: float
    device_rewrites: int
    device_rewound_ms: float
    output_delay_ms: float
    input_delay_ms: float
    output_device_underruns: int
    output_device_underrun_ms: float
    input_device_overruns: int
    input_device_overrun_ms: float
    output_backend_xruns: int
    input_backend_xruns: int
    output_thread: str
    input_thread: str
    jitter_buffer_ms: float

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict (for JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def summary(self) -> str:
        """A few human-readable lines."""
        return "\n".join(
            [
                f"devices     in {self.input_rate_hz} Hz x{self.input_channels}, "
                f"out {self.output_rate_hz} Hz x{self.output_channels}, period {self.period_frames} frames",
                f"capture     {self.frames_captured} frames, {self.chunks_read} chunks read, "
                f"{self.capture_overflows} overflows ({self.capture_overflow_frames} frames dropped), "
                f"level {self.input_rms_dbfs:.1f} dBFS rms / {self.input_peak_dbfs:.1f} peak",
                f"playback    {self.frames_played} frames played, {self.underruns} underruns "
                f"({self.underrun_silence_ms:.0f} ms silence), {self.flushes} flushes "
                f"({self.flushed_ms:.0f} ms dropped), buffered {self.playback_buffered_ms:.0f} ms",
                f"callback    p50 {self.callback_p50_us:.1f} us, p99 {self.callback_p99_us:.1f} us, "
                f"max {self.callback_max_us:.1f} us; interval jitter p99 {self.jitter_p99_ms:.3f} ms, "
                f"max {self.jitter_max_ms:.3f} ms",
                f"device      {self.device_state}, {self.device_errors} errors"
                + (f" (last: {self.last_device_error})" if self.last_device_error else "")
                + (f" on {self.host}" if self.host else "")
                + f"; granted periods out {self.output_period_frames} / in {self.input_period_frames} "
                f"frames for {self.latency_requested_ms:.0f} ms asked; delay out {self.output_delay_ms:.1f} / "
                f"in {self.input_delay_ms:.1f} ms",
                f"gaps        {self.output_device_underruns} device underruns "
                f"({self.output_device_underrun_ms:.0f} ms), {self.input_device_overruns} overruns "
                f"({self.input_device_overrun_ms:.0f} ms), backend xruns out {self.output_backend_xruns} / "
                f"in {self.input_backend_xruns}; jitter buffer {self.jitter_buffer_ms:.0f} ms; threads "
                f"{self.output_thread or '-'} / {self.input_thread or '-'}",
                f"echo        {self.echo_summary()}",
            ]
        )

    def echo_summary(self) -> str:
        """One line on the echo canceller: whether it ran, and its figures if it did."""
        if not self.echo_cancellation:
            return "not cancelled"
        return (f"cancelled ({self.echo_backend}): {self.echo_frames} frames, ERLE {self.echo_erle_db:.0f} dB "
                f"as the canceller reports it, echo delay {self.echo_delay_ms:.0f} ms, "
                f"{self.echo_cost_mean_us:.0f} us per 10 ms frame, {self.echo_realignments} realignments")
