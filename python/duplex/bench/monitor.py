"""The independent ear of the real-sound-server benchmarks: a recorder of a PulseAudio null
sink's monitor, and the envelope and gap measures taken on what it heard.

:class:`MonitorRecorder` runs ``pacat --record`` of ``nullsink.monitor`` (a separate process,
so no GIL) into a file, and a thread polls the file's size to map samples to time. Used by
:mod:`duplex.bench.devicegaps` and :mod:`duplex.bench.host_flush`. :class:`PwMonitorRecorder`
records the same monitor with ``pw-record`` on PipeWire's own protocol, an ear that does not
go through pipewire-pulse (:mod:`duplex.bench.server_stall` stops that process).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import threading
import time

import numpy as np

__all__ = ["MonitorRecorder", "PwMonitorRecorder", "envelope_db", "find_gaps", "find_gap_runs", "find_discontinuities"]

WIN_MS = 1.0  # envelope window: one period of the 1 kHz test tone
GAP_DB = 20.0  # a gap: envelope this far below the tone's level ...
GAP_MIN_MS = 2.0  # ... for longer than this


def envelope_db(x: np.ndarray, rate: int, win_ms: float = WIN_MS) -> np.ndarray:
    """RMS in dBFS of consecutive ``win_ms`` windows."""
    w = max(1, int(round(rate * win_ms / 1000)))
    n = len(x) // w
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(np.square(x[: n * w].reshape(n, w).astype(np.float64)), axis=1))
    return 20 * np.log10(rms + 1e-12)


def find_gap_runs(env: np.ndarray, level_db: float, win_ms: float = WIN_MS,
                  drop_db: float = GAP_DB, min_ms: float = GAP_MIN_MS) -> list[tuple[float, float]]:
    """``(start, length)`` in ms of runs of windows below ``level_db - drop_db`` longer than ``min_ms``."""
    low = np.concatenate([[False], env < level_db - drop_db, [False]])
    edges = np.flatnonzero(np.diff(low.astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]
    return [(float(a * win_ms), float((b - a) * win_ms)) for a, b in zip(starts, ends) if (b - a) * win_ms > min_ms]


def find_gaps(env: np.ndarray, level_db: float, win_ms: float = WIN_MS,
              drop_db: float = GAP_DB, min_ms: float = GAP_MIN_MS) -> list[float]:
    """Lengths (ms) of runs of windows below ``level_db - drop_db`` longer than ``min_ms``."""
    return [length for _, length in find_gap_runs(env, level_db, win_ms, drop_db, min_ms)]


def find_discontinuities(x: np.ndarray, rate: int, freq: float, amp: float,
                         merge_ms: float = 20.0) -> list[int]:
    """Sample indices where a steady sine of ``freq`` and amplitude ``amp`` breaks.

    A sine obeys ``x[n+1] + x[n-1] = 2 cos(w) x[n]`` exactly, so the residual is zero but
    for a resampler's noise (below 1e-4 here), and a cut, an inserted silence or a skipped
    block leaves a residual of the order of the amplitude. Catches what :func:`find_gaps`
    cannot: breaks shorter than its windows (a server inserting 5-10 ms of silence, or
    dropping a block, is a click, not a 20 dB drop of 5 ms). Breaks closer than
    ``merge_ms`` count once (the two ends of a short insertion are one event).
    """
    if len(x) < 3:
        return []
    w = 2 * np.pi * freq / rate
    y = x.astype(np.float64)
    res = np.abs(y[2:] + y[:-2] - 2 * np.cos(w) * y[1:-1])
    bad = np.flatnonzero(res > 0.1 * amp) + 1
    merge = int(rate * merge_ms / 1000)
    return [int(b) for k, b in enumerate(bad) if k == 0 or b - bad[k - 1] > merge]


class MonitorRecorder:
    """``pacat --record`` of the null sink's monitor into ``path``, with a clock mapping.

    Sample i is mapped to ``t0 + i / rate`` (``perf_counter`` time), ``t0`` the minimum over
    polls of ``t_poll - frames / rate``: the mapping is fixed by the prompt polls before a
    load starts, and samples are never lost. A server that renders ahead (a catch-up block
    after it was starved) moves that minimum early; :meth:`clock_spread_ms` (median minus
    minimum) shows by how much the mapping may be off. Differences on the same mapping (a
    barge-in minus the round trip) do not depend on it.
    """

    def __init__(self, env: dict[str, str], path: str, rate: int = 48_000, latency_ms: float = 10.0) -> None:
        self.rate = rate
        self.path = path
        self.blocks: list[np.ndarray] = []
        self.frames: int = 0
        self.t0: float = math.inf  # perf_counter time of sample 0 (earliest consistent estimate)
        self.t_last: float = 0.0
        self.offsets: list[float] = []
        self._f = open(path, "wb")
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["pacat", "--record", "-d", "nullsink.monitor", "--raw", "--format=float32le",
             # Both channels, the left one kept: servers downmix to mono differently (PipeWire
             # sums at -3 dB each, 3 dB above PulseAudio's average of equal channels).
             "--channels=2", f"--rate={rate}", f"--latency-msec={latency_ms:g}", "--client-name=duplex-bench-monitor"],
            stdout=self._f, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **env}, start_new_session=True)
        self._stop = threading.Event()
        self._poll = threading.Thread(target=self._poller, name="monitor-poll", daemon=True)
        self._poll.start()

    def _poller(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                n = os.path.getsize(self.path) // 8
            except OSError:
                n = seen
            t = time.perf_counter()
            if n > seen:
                self.frames, self.t_last, seen = n, t, n
                self.offsets.append(t - n / self.rate)
                self.t0 = min(self.t0, self.offsets[-1])
            self._stop.wait(0.002)

    def clock_spread_ms(self) -> float | None:
        """Median minus minimum of the poll offsets, in ms (None before two polls)."""
        if len(self.offsets) < 2:
            return None
        return round((float(np.median(self.offsets)) - self.t0) * 1e3, 1)

    def close(self) -> None:
        """Stops the recording and loads what it heard (see :meth:`signal`)."""
        self._stop.set()
        self._poll.join(2.0)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3.0)
        self._f.close()
        data = np.fromfile(self.path, dtype="<f4")
        self.blocks = [data[: 2 * (len(data) // 2)].reshape(-1, 2)[: self.frames, 0].copy()]
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def signal(self) -> np.ndarray:
        """The recorded monitor signal, mono float32 (after :meth:`close`)."""
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)

    def index(self, t: float) -> int:
        """The sample heard at ``perf_counter`` time ``t``."""
        return max(0, int(round((t - self.t0) * self.rate)))

    def time(self, i: int) -> float:
        """The ``perf_counter`` time of sample ``i``."""
        return self.t0 + i / self.rate


class PwMonitorRecorder:
    """``pw-record`` of the PipeWire null sink's monitor into a WAV file (no clock mapping).

    It talks to the PipeWire daemon directly, so a stalled pipewire-pulse, which a ``pacat``
    recorder goes through, does not stall it: what it records is what the sink played.
    """

    def __init__(self, env: dict[str, str], path: str, rate: int = 48_000, latency_ms: float = 40.0) -> None:
        self.rate = rate
        self.path = path
        self._x = np.zeros(0, np.float32)
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            ["pw-record", "--target", "nullsink", "-P", "stream.capture.sink=true", "--latency", f"{latency_ms:g}ms",
             "--rate", str(rate), "--channels", "2", "--format", "f32", path],
            env={**os.environ, **env}, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def close(self) -> None:
        """Stops the recording (SIGINT: pw-record then writes the WAV sizes) and loads it."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        with open(self.path, "rb") as f:
            raw = f.read()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        data = raw.find(b"data")
        if data < 0:
            raise RuntimeError("pw-record wrote no WAV data chunk")
        x = np.frombuffer(raw[data + 8:], dtype="<f4")
        # The left channel, as MonitorRecorder keeps.
        self._x = x[: 2 * (len(x) // 2)].reshape(-1, 2)[:, 0].copy()

    def signal(self) -> np.ndarray:
        """The recorded monitor signal, mono float32 (after :meth:`close`)."""
        return self._x
