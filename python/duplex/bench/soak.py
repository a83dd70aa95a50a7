"""A soak: a long simulated conversation on the virtual device, faster than real time.

The user speaks (a tone into the virtual microphone, read as 20 ms chunks), the "model"
answers in bursts the way the Live service sends (ahead of real time, chunks of random
size, sometimes late enough to underrun), and the user barges in on about a third of the
answers (``interrupt()``). The virtual device runs as fast as the reader takes its audio,
so simulated time is the device's own frame clock: an hour takes about a minute or two.

Checked at the end, and reported: memory (RSS), threads and open file descriptors stay
flat (sampled every simulated minute once the playback ring has gone round once); every playback frame is accounted
(``frames_pushed = frames_played + frames_flushed``, exactly, after ``stop()``); the
capture side lost nothing (no overflow, chunks read match frames captured); every
interrupt reports no more heard than received.

Run it: ``duplex bench --soak 60`` or ``python -m duplex.bench.soak --minutes 60``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..devices import Tone, VirtualDevice
from ..engine import AudioEngine

__all__ = ["SoakResult", "run_soak", "main"]

RATE = 48_000
#: The engine's default capture ring (two minutes): at ``SOAK_SPEED`` it rides out a 4 s
#: stall of the reading thread, as a real session's ring rides out a two-minute one.
CAPTURE_BUFFER_MS = 120_000
#: A ring's pages are touched for the first time as its write index goes round (120 s is
#: 23 MB): resources are compared from the first sample after the rings have gone round
#: once. 30 s of playback holds the longest answer here (8 s) with room to spare.
PLAYBACK_BUFFER_MS = 30_000
#: Allowed growth of the resident set after the first simulated minute.
RSS_SLACK_MB = 8.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class SoakResult:
    """What a soak did and whether everything held."""

    simulated_s: float = 0.0
    wall_s: float = 0.0
    turns: int = 0
    interrupts: int = 0
    underruns: int = 0
    chunks_read: int = 0
    frames_pushed: int = 0
    frames_played: int = 0
    frames_flushed: int = 0
    frames_buffered_after_stop: int = 0
    capture_overflow_frames: int = 0
    capture_frames_unaccounted: int = 0
    rss_mb: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return not self.failures

    def summary(self) -> str:
        """One paragraph for a terminal."""
        speedup = self.simulated_s / self.wall_s if self.wall_s else float("nan")
        lines = [
            f"soak: {self.simulated_s / 60:.1f} simulated min in {self.wall_s:.1f} s wall ({speedup:.0f}x), "
            f"{self.turns} turns, {self.interrupts} interrupts, {self.underruns} underruns",
            f"playback: pushed {self.frames_pushed} = played {self.frames_played} + flushed "
            f"{self.frames_flushed} + buffered {self.frames_buffered_after_stop} "
            f"(unaccounted {self.frames_pushed - self.frames_played - self.frames_flushed - self.frames_buffered_after_stop})",
            f"capture: {self.chunks_read} chunks, {self.capture_overflow_frames} frames dropped, "
            f"{self.capture_frames_unaccounted} frames unaccounted",
            f"RSS {self.rss_mb[0]:.1f} -> {self.rss_mb[-1]:.1f} MB (max {max(self.rss_mb):.1f}), "
            f"threads {self.threads[0]} -> {self.threads[-1]}, fds {self.fds[0]} -> {self.fds[-1]}"
            if self.rss_mb
            else "no resource samples",
            "all checks held" if self.ok else "FAILED: " + "; ".join(self.failures),
        ]
        return "\n".join(lines)


def _answer(rng: np.random.Generator, seconds: float) -> list[bytes]:
    """A spoken-ish answer: a gliding tone in chunks of random size, as the service sends."""
    n = int(24_000 * seconds)
    t = np.arange(n) / 24_000
    pcm = (8_000 * np.sin(2 * np.pi * (220 + 40 * np.sin(t)) * t)).astype(np.int16)
    cuts = np.cumsum(rng.integers(480, 9_600, size=n // 480 + 1))
    return [pcm[a:b].tobytes() for a, b in zip(np.r_[0, cuts], cuts) if a < n]


#: Simulated seconds per wall second. Fast, but bounded: an unthrottled device (``speed=0``)
#: outran the Python reader whenever the machine stalled it for more than the capture ring's
#: wall-clock length (120 s of audio was 1.6 s at the 74x it reached), and the soak then
#: failed on dropped capture it had caused itself. At 30x the ring covers a 4 s stall.
SOAK_SPEED = 30.0


def run_soak(minutes: float = 60.0, seed: int = 0, progress: bool = False,
             speed: float = SOAK_SPEED) -> SoakResult:
    """Runs ``minutes`` of simulated conversation at ``speed`` times real time and returns
    what held."""
    rng = np.random.default_rng(seed)
    result = SoakResult()
    device = VirtualDevice(sample_rate=RATE, speed=speed, input=Tone(300, 0.2), output=None)
    engine = AudioEngine(
        backend=device,
        prebuffer_ms=120,
        capture_buffer_ms=CAPTURE_BUFFER_MS,
        playback_buffer_ms=PLAYBACK_BUFFER_MS,
    )
    engine.start()
    t0 = time.monotonic()
    sim = lambda: engine.stats().frames_rendered / RATE  # noqa: E731 - the device clock
    next_sample = 60.0

    def read_until(simulated_s: float) -> None:
        nonlocal next_sample
        while sim() < simulated_s:
            chunk = engine.read(timeout=5.0)
            if chunk is None:
                result.failures.append(f"read() timed out at {sim():.1f} s simulated")
                return
            result.chunks_read += 1
            if sim() >= next_sample:
                next_sample += 60.0
                if (engine.stats().frames_pushed < PLAYBACK_BUFFER_MS * RATE // 1000
                        or sim() < CAPTURE_BUFFER_MS / 1000):
                    continue  # warming up: a ring has not gone round yet
                result.rss_mb.append(round(_rss_mb(), 2))
                result.threads.append(_threads())
                result.fds.append(_fds())
                if progress:
                    print(f"  {sim() / 60:5.1f} min  RSS {result.rss_mb[-1]:.1f} MB  threads "
                          f"{result.threads[-1]}  fds {result.fds[-1]}", file=sys.stderr)

    try:
        while sim() < minutes * 60 and not result.failures:
            result.turns += 1
            read_until(sim() + rng.uniform(0.5, 3.0))  # the user speaks
            chunks = _answer(rng, rng.uniform(0.3, 8.0))
            barge_in = rng.random() < 0.35
            # Most chunks arrive at once; a late tail now and then makes an underrun.
            late = int(len(chunks) * rng.uniform(0.5, 1.0)) if rng.random() < 0.2 else len(chunks)
            for c in chunks[:late]:
                engine.play(c, timeout=5.0)
            if late < len(chunks):
                read_until(sim() + rng.uniform(0.2, 0.6))
                for c in chunks[late:]:
                    engine.play(c, timeout=5.0)
            if barge_in:
                read_until(sim() + rng.uniform(0.05, 2.0))
                report = engine.interrupt()
                result.interrupts += 1
                if report.heard_ms > report.received_ms + 1e-9:
                    result.failures.append(f"turn {result.turns}: heard {report.heard_ms} > received {report.received_ms}")
            else:
                engine.end_turn(timeout=5.0)
                deadline = sim() + 20.0
                while engine.stats().playback_buffered_frames > 0 and sim() < deadline:
                    read_until(sim() + 0.1)
        engine.stop()
        s = engine.stats()
    finally:
        engine.close()
    result.wall_s = round(time.monotonic() - t0, 2)
    result.simulated_s = round(s.frames_rendered / RATE, 2)
    result.underruns = s.underruns
    result.frames_pushed = s.frames_pushed
    result.frames_played = s.frames_played
    result.frames_flushed = s.frames_flushed
    result.frames_buffered_after_stop = s.playback_buffered_frames
    result.capture_overflow_frames = s.capture_overflow_frames
    # Capture: every device frame became part of a chunk read, or was still queued when the
    # engine stopped: at most a full capture ring, plus what the reader had already moved
    # through its resampler (it drains the whole ring at once: at most another ring), one
    # resampler block (20 ms) and a partial chunk (20 ms). An as-fast-as-possible device
    # runs that far ahead of its reader; a real-time one does not.
    read_device_frames = result.chunks_read * 320 * RATE // 16_000
    pending = s.frames_captured - s.capture_overflow_frames - read_device_frames
    max_pending = 2 * CAPTURE_BUFFER_MS * RATE // 1000 + 2 * 960
    result.capture_frames_unaccounted = int(max(0, -pending) + max(0, pending - max_pending))
    if s.frames_pushed != s.frames_played + s.frames_flushed + s.playback_buffered_frames:
        result.failures.append("playback frames unaccounted")
    if s.capture_overflow_frames:
        result.failures.append(f"{s.capture_overflow_frames} capture frames dropped")
    if result.capture_frames_unaccounted:
        result.failures.append(f"{result.capture_frames_unaccounted} capture frames unaccounted")
    if len(result.rss_mb) >= 2:
        if result.rss_mb[-1] - result.rss_mb[0] > RSS_SLACK_MB:
            result.failures.append(f"RSS grew {result.rss_mb[0]} -> {result.rss_mb[-1]} MB")
        if result.threads[-1] != result.threads[0]:
            result.failures.append(f"threads {result.threads[0]} -> {result.threads[-1]}")
        if result.fds[-1] != result.fds[0]:
            result.failures.append(f"fds {result.fds[0]} -> {result.fds[-1]}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m duplex.bench.soak``: runs a soak, prints the summary; exit 1 if a check failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result as JSON here")
    args = p.parse_args(argv)
    if not (args.minutes > 0 and np.isfinite(args.minutes)):
        p.error("--minutes must be a positive number")
    result = run_soak(args.minutes, args.seed, progress=True)
    print(result.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**asdict(result), "ok": result.ok}, f, indent=1)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
