"""Measurements on recorded signals and timestamps, shared by duplex and the baselines.

Everything here is a pure function of arrays and numbers, so it is tested on synthetic
signals (``tests/test_bench.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SILENCE_THRESHOLD",
    "ClickMatch",
    "interrupt_latency_ms",
    "interval_jitter_ms",
    "last_nonsilent_frame",
    "loud_groups",
    "match_clicks",
    "percentiles",
]

#: A frame is silent below this magnitude (-60 dBFS): a fade's last tail samples and
#: dither-level noise count as silence; any audible sample does not.
SILENCE_THRESHOLD = 1e-3


def last_nonsilent_frame(
    signal: np.ndarray, start: int, end: int, threshold: float = SILENCE_THRESHOLD
) -> int | None:
    """Index of the last frame in ``signal[start:end]`` with ``|x| >= threshold``, or ``None``."""
    start = max(0, int(start))
    end = min(len(signal), int(end))
    if end <= start:
        return None
    loud = np.flatnonzero(np.abs(signal[start:end]) >= threshold)
    return None if len(loud) == 0 else start + int(loud[-1])


def interrupt_latency_ms(
    signal: np.ndarray,
    interrupt_frame: float,
    window_end_frame: float,
    rate: int,
    threshold: float = SILENCE_THRESHOLD,
    next_turn_frame: float | None = None,
) -> tuple[float, bool]:
    """Interrupt-to-silence latency measured on the output signal.

    ``interrupt_frame`` is the (fractional) device frame being played when ``interrupt()``
    was called; the latency is from there to the end of the last non-silent frame before
    ``window_end_frame`` (the output committed before the next turn was queued). Returns
    ``(ms, censored)``. ``censored`` means the interrupted audio was still sounding when
    the next turn was queued (at ``next_turn_frame``; without it, when sound reaches the
    window's end), so a late part of it could hide behind the next turn and the value is a
    lower bound. 0 when the output was already silent.
    """
    last = last_nonsilent_frame(signal, math.floor(interrupt_frame), math.ceil(window_end_frame), threshold)
    if last is None:
        return 0.0, False
    limit = math.ceil(window_end_frame) - 1 if next_turn_frame is None else next_turn_frame
    return max(0.0, (last + 1 - interrupt_frame) * 1000.0 / rate), last >= limit


def interval_jitter_ms(runs: Sequence[np.ndarray], period_s: float) -> np.ndarray:
    """``|interval - period|`` in ms between consecutive timestamps of each run.

    The same definition as duplex's ``jitter_*`` counters (distance of each callback
    interval from the nominal period).
    """
    parts = [np.abs(np.diff(np.asarray(r, dtype=np.float64)) - period_s) * 1e3 for r in runs if len(r) > 1]
    return np.concatenate(parts) if parts else np.zeros(0)


def percentiles(values: np.ndarray | Sequence[float], qs: Sequence[float] = (50, 99)) -> dict[str, float]:
    """``{"p50": .., "p99": .., "max": ..}`` of ``values`` (NaN when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {**{f"p{q:g}": math.nan for q in qs}, "max": math.nan}
    out = {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}
    out["max"] = float(arr.max())
    return out


@dataclass
class ClickMatch:
    """Capture-to-chunk latency of each click, and what became of the others.

    ``latencies_ms`` has one entry per click (``None`` for a click that was lost or not
    read); ``lost`` clicks were dropped by the device (capture overrun), ``unread`` were not
    returned by ``read()`` before the run ended, ``mismatched`` is non-zero when the loud
    chunks and the clicks could not be paired consistently (then the latencies are unset).
    """

    latencies_ms: list[float | None]
    lost: int
    unread: int
    mismatched: int


def loud_groups(chunk_peaks: Sequence[float], threshold: float) -> list[int]:
    """Indices of the first chunk of each run of consecutive chunks at or above ``threshold``."""
    starts, previous = [], False
    for i, peak in enumerate(chunk_peaks):
        loud = peak >= threshold
        if loud and not previous:
            starts.append(i)
        previous = loud
    return starts


def match_clicks(
    enter_times: Sequence[float],
    survived: Sequence[bool],
    chunk_times: Sequence[float],
    chunk_peaks: Sequence[float],
    threshold: float,
) -> ClickMatch:
    """Pairs clicks with the chunks that carry them, in order.

    ``enter_times`` are the times at which each click's period was handed to the software
    (clicks in order, far enough apart that two never share a chunk), ``survived`` whether
    the device kept that period (``False``: dropped by a capture overrun). Chunks are in the
    order ``read()`` returned them, with their return times and peak magnitudes. Every
    surviving click makes one run of loud chunks; the k-th run belongs to the k-th
    surviving click, and its first chunk's return time minus the click's entry time is the
    capture-to-chunk latency.
    """
    groups = loud_groups(chunk_peaks, threshold)
    kept = [i for i, ok in enumerate(survived) if ok]
    latencies: list[float | None] = [None] * len(enter_times)
    if len(groups) > len(kept):
        return ClickMatch(latencies, len(enter_times) - len(kept), 0, len(groups) - len(kept))
    for click, group in zip(kept, groups):
        latency = chunk_times[group] - enter_times[click]
        if latency < 0:
            return ClickMatch([None] * len(enter_times), len(enter_times) - len(kept), 0, 1)
        latencies[click] = latency * 1e3
    return ClickMatch(latencies, len(enter_times) - len(kept), len(kept) - len(groups), 0)
