"""Scale: many :class:`duplex.AudioEngine` instances in one process, as a server running N
concurrent Live sessions would.

For each engine count (1, 8, 32, 64 by default) the benchmark starts that many engines on
virtual devices (48 kHz, 10 ms periods, a tone as microphone, output discarded) and drives
them all from one asyncio loop, the way N Live sessions in one process would: per engine a
feeder task plays 40 ms chunks of 24 kHz int16 "model audio" at real-time pace with
:meth:`~duplex.AudioEngine.play_async` (feeders staggered over the 40 ms, so they do not
all fire at once), and a reader task takes the 20 ms 16 kHz capture chunks with
:meth:`~duplex.AudioEngine.read_async`. Each engine keeps the default 200 ms prebuffer and
2 s capture ring.

Reported per engine count: underruns and capture overflows (summed over engines, and how
many engines had any), the output callback's interval jitter p99 (median and worst engine)
and callback duration p99 from :meth:`~duplex.AudioEngine.stats`, the smallest playback
buffer and largest capture backlog seen (sampled every 100 ms), how late the feeders and the
event loop ran, capture chunks read against real time, and the process CPU use
(``time.process_time`` over wall time, in % of one core; the machine's cores are the
limit), split by thread: virtual device threads (the "sound card"), the virtual sink threads
(an artefact of the virtual device: each polls every 5 ms even with output discarded), the
event loop, and the engines' read/play worker threads.

Each virtual device is a thread with its own clock (plus its sink thread), so 64 engines are
about 200 threads on however many cores the machine has.

Run ``python -m duplex.bench.scale`` (``--quick`` for about 1 s per engine count,
``--counts 1 8 64 128`` for other counts, ``--json`` for the rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import threading
import time
from typing import Any

import numpy as np

from ..devices import Tone, VirtualDevice
from ..engine import PLAY_RATE_HZ, AudioEngine
from .extra_cli import extra_main

__all__ = ["ENGINE_COUNTS", "CHUNK_MS", "thread_cpu_seconds", "run_count", "format_markdown", "run", "main"]

#: Engine counts measured by :func:`run`.
ENGINE_COUNTS: tuple[int, ...] = (1, 8, 32, 64)
#: Length of each model-audio chunk the feeders play (the Live API sends chunks of tens of ms).
CHUNK_MS = 40
#: How often the monitor samples every engine's buffers.
MONITOR_MS = 100


def thread_cpu_seconds() -> dict[int, tuple[str, float, float]]:
    """Per thread of this process, by thread id: its name, the CPU seconds it has used and
    the seconds it has spent runnable but waiting for a core (``/proc/self/task/*/schedstat``;
    where that is missing, CPU from ``stat`` ticks and NaN for the wait)."""
    out: dict[int, tuple[str, float, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid_s in os.listdir("/proc/self/task"):
        base = f"/proc/self/task/{tid_s}"
        try:
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            try:
                with open(f"{base}/schedstat") as f:
                    run_ns, wait_ns = (int(v) for v in f.read().split()[:2])
                seconds, waited = run_ns / 1e9, wait_ns / 1e9
            except OSError:
                with open(f"{base}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                seconds, waited = (int(fields[11]) + int(fields[12])) / tick, float("nan")
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
        out[int(tid_s)] = (name, seconds, waited)
    return out


def _group(tid: int, name: str, roles: dict[int, str]) -> str:
    """The thread's group for the CPU split (``roles``: labels by thread id, and ``-id`` ->
    ``"worker"`` for the engines' Python worker threads)."""
    if tid in roles:
        return roles[tid]
    if tid == threading.main_thread().native_id:
        return "event loop"
    if roles.get(-tid) == "worker" or name.startswith(("duplex-read", "duplex-play")):
        return "read/play workers"
    if name.startswith("duplex-virtual"):
        return "virtual device + sink"
    return "other"


def _start_engines(count: int) -> tuple[list[AudioEngine], dict[int, str]]:
    """Starts ``count`` virtual engines; labels each engine's new threads. With the output
    discarded a virtual device runs one thread, its clock; with a sink it spawns the sink
    thread first, then the clock thread, so the lower id is the sink."""
    engines: list[AudioEngine] = []
    roles: dict[int, str] = {}
    for i in range(count):
        device = VirtualDevice(speed=1.0, input=Tone(300.0 + 7 * i, 0.3), output=None)
        engine = AudioEngine(backend=device)
        before = set(os.listdir("/proc/self/task"))
        engine.start()
        new = sorted(int(t) for t in set(os.listdir("/proc/self/task")) - before)
        if len(new) == 2:
            roles[new[0]], roles[new[1]] = "virtual sink", "virtual device (clock)"
        elif len(new) == 1:
            roles[new[0]] = "virtual device (clock)"
        engines.append(engine)
    return engines, roles


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def _drive(engines: list[AudioEngine], seconds: float) -> dict[str, Any]:
    """Feeds and reads every engine for ``seconds``; returns the raw samples."""
    loop = asyncio.get_running_loop()
    chunk_s = CHUNK_MS / 1000
    t = np.arange(PLAY_RATE_HZ * CHUNK_MS // 1000) / PLAY_RATE_HZ
    pcm = np.round(8000 * np.sin(2 * np.pi * 250.0 * t)).astype(np.int16)  # whole cycles: seamless
    t0 = loop.time() + 0.05
    end = t0 + seconds
    late: list[float] = []
    lag: list[float] = []
    chunks = [0] * len(engines)
    play_min = [float("inf")] * len(engines)
    capture_max = [0.0] * len(engines)

    async def feed(i: int, engine: AudioEngine) -> None:
        offset = chunk_s * i / len(engines)
        k = 0
        while (due := t0 + offset + k * chunk_s) < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            late.append(loop.time() - due)
            await engine.play_async(pcm)
            k += 1

    async def read(i: int, engine: AudioEngine) -> None:
        while loop.time() < end:
            if await engine.read_async(0.1) is not None:
                chunks[i] += 1

    async def monitor() -> None:
        settle = t0 + 0.5  # after the 200 ms prebuffer has filled
        while True:
            await asyncio.sleep(MONITOR_MS / 1000)
            if (now := loop.time()) >= end - CHUNK_MS / 1000:  # feeders done: buffers drain
                break
            for i, engine in enumerate(engines):
                s = engine.stats()
                capture_max[i] = max(capture_max[i], s.capture_buffered_ms)
                if now >= settle:
                    play_min[i] = min(play_min[i], s.playback_buffered_ms)

    async def loop_lag() -> None:
        while loop.time() < end:
            due = loop.time() + 0.005
            await asyncio.sleep(0.005)
            lag.append(loop.time() - due)

    await asyncio.sleep(max(0.0, t0 - loop.time()))
    tasks = [feed(i, e) for i, e in enumerate(engines)] + [read(i, e) for i, e in enumerate(engines)]
    await asyncio.gather(*tasks, monitor(), loop_lag())
    stats = [e.stats() for e in engines]  # before anything stops: no end-of-test underrun
    return {
        "late": late,
        "lag": lag,
        "chunks": chunks,
        "play_min": play_min,
        "capture_max": capture_max,
        "stats": stats,
    }


def run_count(count: int, seconds: float) -> dict[str, Any]:
    """One engine count: starts ``count`` engines, drives them for ``seconds`` and returns
    the row (see the module docstring for the fields)."""
    engines, roles = _start_engines(count)
    try:
        threads_before = thread_cpu_seconds()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        raw = asyncio.run(_drive(engines, seconds))
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        threads_after = thread_cpu_seconds()
        for t in threading.enumerate():  # Python does not name OS threads (before 3.14)
            if t.name.startswith(("duplex-read", "duplex-play")) and t.native_id is not None:
                roles[-t.native_id] = "worker"
        thread_count = len(threads_after)
    finally:
        for engine in engines:
            engine.close()
    by_group: dict[str, float] = {}
    for tid, (name, used, _) in threads_after.items():
        delta = used - threads_before.get(tid, (name, 0.0, 0.0))[1]
        key = _group(tid, name, roles)
        by_group[key] = by_group.get(key, 0.0) + delta
    main_tid = threading.main_thread().native_id or 0
    loop_wait = threads_after.get(main_tid, ("", 0.0, float("nan")))[2] - threads_before.get(
        main_tid, ("", 0.0, float("nan"))
    )[2]
    stats = raw["stats"]
    jitter = [s.jitter_p99_ms for s in stats]
    return {
        "engines": count,
        "seconds": round(wall, 2),
        "threads": thread_count,
        "cpu_percent": 100 * cpu / wall,
        "cpu_percent_per_engine": 100 * cpu / wall / count,
        "cpu_percent_by_thread": {k: 100 * v / wall for k, v in sorted(by_group.items())},
        "loop_waiting_for_core_percent": 100 * loop_wait / wall,
        "involuntary_switches_per_s": (usage_after.ru_nivcsw - usage_before.ru_nivcsw) / wall,
        "underruns": sum(s.underruns for s in stats),
        "engines_with_underruns": sum(1 for s in stats if s.underruns),
        "underrun_silence_ms": sum(s.underrun_silence_ms for s in stats),
        "capture_overflows": sum(s.capture_overflows for s in stats),
        "device_errors": sum(s.device_errors for s in stats),
        "jitter_p99_ms_median": float(np.median(jitter)),
        "jitter_p99_ms_max": float(np.max(jitter)),
        "jitter_max_ms": float(max(s.jitter_max_ms for s in stats)),
        "input_jitter_p99_ms_max": float(max(s.input_jitter_p99_ms for s in stats)),
        "callback_p99_us_max": float(max(s.callback_p99_us for s in stats)),
        "playback_buffer_min_ms": float(min(raw["play_min"])),
        "capture_backlog_max_ms": float(max(raw["capture_max"])),
        "feed_late_p99_ms": 1000 * _p(raw["late"], 99),
        "feed_late_max_ms": 1000 * max(raw["late"], default=float("nan")),
        "loop_lag_p99_ms": 1000 * _p(raw["lag"], 99),
        "loop_lag_max_ms": 1000 * max(raw["lag"], default=float("nan")),
        "chunks_read_pct": 100 * float(
            np.mean([s.chunks_read / max(1.0, s.frames_captured / (s.input_rate_hz * 0.02)) for s in stats])
        ),
        "frames_played_min": int(min(s.frames_played for s in stats)),
    }


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as Markdown: the health table, then the CPU split by thread."""
    lines = [
        "| Engines | Threads | CPU % (of one core) | CPU % per engine | Underruns (engines) | Capture overflows "
        "| Jitter p99 ms, median / worst engine | Jitter max ms | Callback p99 µs, worst | Min playback buffer ms "
        "| Max capture backlog ms | Feeder late p99 / max ms | Loop lag p99 / max ms | Chunks read % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engines']} | {r['threads']} | {r['cpu_percent']:.1f} | {r['cpu_percent_per_engine']:.2f} "
            f"| {r['underruns']} ({r['engines_with_underruns']}) | {r['capture_overflows']} "
            f"| {r['jitter_p99_ms_median']:.2f} / {r['jitter_p99_ms_max']:.2f} | {r['jitter_max_ms']:.1f} "
            f"| {r['callback_p99_us_max']:.0f} | {r['playback_buffer_min_ms']:.0f} "
            f"| {r['capture_backlog_max_ms']:.0f} "
            f"| {r['feed_late_p99_ms']:.1f} / {r['feed_late_max_ms']:.1f} "
            f"| {r['loop_lag_p99_ms']:.1f} / {r['loop_lag_max_ms']:.1f} | {r['chunks_read_pct']:.1f} |"
        )
    groups = sorted({g for r in rows for g in r["cpu_percent_by_thread"]})
    lines += [
        "",
        "| Engines | "
        + " | ".join(f"CPU % {g}" for g in groups)
        + " | event loop waiting for a core % | involuntary switches /s |",
    ]
    lines.append("|---:|" + "---:|" * (len(groups) + 2))
    for r in rows:
        split = " | ".join(f"{r['cpu_percent_by_thread'].get(g, 0.0):.1f}" for g in groups)
        lines.append(
            f"| {r['engines']} | {split} | {r['loop_waiting_for_core_percent']:.1f} "
            f"| {r['involuntary_switches_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def run(quick: bool = False, counts: tuple[int, ...] = ENGINE_COUNTS, seconds: float | None = None) -> dict[str, Any]:
    """Measures each engine count in turn (``seconds`` each: 1 s quick, 10 s full) and
    returns ``rows`` (one per count), ``markdown``, ``cores`` and the total ``seconds``."""
    started = time.perf_counter()
    per_count = seconds if seconds is not None else (1.0 if quick else 10.0)
    rows = [run_count(n, per_count) for n in counts]
    return {
        "rows": rows,
        "markdown": format_markdown(rows),
        "cores": os.cpu_count(),
        "seconds_per_count": per_count,
        "quick": quick,
        "seconds": time.perf_counter() - started,
    }


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--counts", type=int, nargs="+", default=list(ENGINE_COUNTS), help="engine counts")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per engine count")


def main(argv: list[str] | None = None) -> None:
    """Command line: prints the tables (or the result as JSON with ``--json``)."""
    extra_main(
        argv, prog="python -m duplex.bench.scale", description=__doc__.split("\n")[0],
        quick_help="about 1 s per engine count", add_options=_options,
        run=lambda args: run(quick=args.quick, counts=tuple(args.counts), seconds=args.seconds),
        summary=lambda result: (f"\n({os.cpu_count()} cores, {result['seconds_per_count']:g} s per count, "
                                f"{result['seconds']:.1f} s total)"),
    )


if __name__ == "__main__":
    main()
