"""Capture latency on a real sound server: a click at the microphone to the 16 kHz chunk
that holds it arriving in Python, duplex against a naive sounddevice ``InputStream``.

Method. A fresh PulseAudio null sink (:mod:`duplex.testing.audio_server`). A ``pacat``
player writes clicks (1 ms pulses, 0.5 amplitude) into the sink at random intervals of
0.25-0.45 s, so each click falls at a random place in its chunk. An independent ``pacat``
recorder (a separate process, no GIL) reads the sink's monitor and stamps every read with
``CLOCK_MONOTONIC``: monitor sample ``i`` is at ``t0 + i / rate`` with ``t0`` the minimum
over reads of ``t_read - frames_so_far / rate``; that is when each click was available to
capture ("at the microphone"). Every subject runs in its own process at the same time,
captures the default source (the monitor), stamps each chunk when Python gets it, and
reports the arrival time of every chunk where a click starts (first sample above 0.1 after
150 ms below it). Latency = chunk arrival - click time at the monitor. Subjects:

* ``duplex``: ``AudioEngine()`` on the default devices (cpal, ALSA ``default`` → pulse,
  default ``latency``), echo cancellation off, chunks taken by ``read_async`` in an asyncio
  loop (as ``LiveConversation`` does).
* ``duplex-low``: the same with ``latency="low"`` (20 ms device buffer, 6.7 ms periods).
* ``duplex-aec``: ``duplex`` with echo cancellation on (the default on real devices).
* ``sounddevice``: the naive baseline: ``sd.InputStream(samplerate=16000, channels=1,
  dtype='int16', blocksize=320)`` at its default latency, the callback stamping each block.

    python -m duplex.bench.capturelatency               # 3 × 20 s, prints a table
    python -m duplex.bench.capturelatency --seconds 8 --runs 1 --json out.json
    python -m duplex.bench.capturelatency --before /work/main/.venv/bin/python   # + main's build
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

RATE = 48_000
CLICK_LEVEL = 0.5
THRESHOLD = 0.1
QUIET_S = 0.15
SUBJECTS = ("duplex", "duplex-low", "duplex-aec", "sounddevice")


def onsets(x: np.ndarray, rate: int) -> list[int]:
    """Indices where a click starts: above THRESHOLD after QUIET_S below it."""
    above = np.flatnonzero(np.abs(x) > THRESHOLD)
    out: list[int] = []
    last = -(10**12)
    for i in above:
        if i - last > QUIET_S * rate:
            out.append(int(i))
        last = int(i)
    return out


class _ChunkOnsets:
    """Finds click onsets in a stream of chunks; keeps the arrival time of each."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._quiet_since = 0
        self._pos = 0

    def add(self, chunk: np.ndarray, t: float, rate: int = 16_000) -> None:
        x = chunk.astype(np.float32) / 32768.0
        for i in np.flatnonzero(np.abs(x) > THRESHOLD):
            k = self._pos + int(i)
            if k - self._quiet_since > QUIET_S * rate:
                self.times.append(t)
            self._quiet_since = k
        self._pos += len(x)


def _subject(name: str, seconds: float) -> list[float]:
    """Runs one subject for ``seconds``; returns chunk arrival times of click onsets."""
    found = _ChunkOnsets()
    if name == "sounddevice":
        import sounddevice as sd

        def cb(indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
            found.add(indata[:, 0].copy(), time.monotonic())

        with sd.InputStream(samplerate=16_000, channels=1, dtype="int16", blocksize=320, callback=cb):
            print("ready", flush=True)
            time.sleep(seconds)
        return found.times
    import asyncio

    import duplex
    import duplex.errors

    async def run() -> None:
        kwargs: dict[str, Any] = {"echo_cancellation": name == "duplex-aec"}
        if name == "duplex-low":
            kwargs["latency"] = "low"
        engine = duplex.AudioEngine(**kwargs)
        async with engine:
            with contextlib.suppress(duplex.errors.DeviceError):
                await engine.read_async(2.0)
            print("ready", flush=True)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    chunk = await engine.read_async(0.5)
                except duplex.errors.DeviceError:
                    continue  # a server starved by a loaded machine: the engine reopens it
                if chunk is not None:
                    found.add(np.frombuffer(chunk, dtype=np.int16), time.monotonic())

    asyncio.run(run())
    return found.times


class _Recorder:
    """``pacat --record`` of the monitor, each read stamped with CLOCK_MONOTONIC."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["pacat", "--record", "-d", "nullsink.monitor", "--raw", "--format=float32le", "--channels=1",
             f"--rate={RATE}", "--latency-msec=10", "--client-name=capturelatency-monitor"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
        self.blocks: list[np.ndarray] = []
        self.frames = 0
        self.t0 = float("inf")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            data = os.read(fd, 4096)
            t = time.monotonic()
            if not data:
                return
            x = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4")
            self.blocks.append(x)
            self.frames += len(x)
            self.t0 = min(self.t0, t - self.frames / RATE)

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(5)
        self._thread.join(5)
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def _clicks(seconds: float, rng: random.Random) -> np.ndarray:
    x = np.zeros(int(seconds * RATE), np.float32)
    t = 0.3
    while t < seconds - 0.5:
        i = int(t * RATE)
        x[i : i + RATE // 1000] = CLICK_LEVEL
        t += rng.uniform(0.25, 0.45)
    return x


def run_once(env: dict[str, str], seconds: float, subjects: tuple[str, ...], seed: int,
             before: str | None = None) -> dict[str, Any]:
    """One run: every subject at once against the same clicks; latencies in ms per subject.
    A subject named ``before:NAME`` runs NAME with the interpreter ``before`` (another
    checkout's venv), for a before/after comparison in the same run."""
    procs = {}
    for s in subjects:
        python, name = (before, s.split(":", 1)[1]) if s.startswith("before:") else (sys.executable, s)
        procs[s] = subprocess.Popen([python or sys.executable, os.path.abspath(__file__), "--subject", name,
                                     "--seconds", str(seconds + 3.0)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, env={**os.environ, **env}, text=True)
    rec = _Recorder({**os.environ, **env})
    for p in procs.values():  # every subject has its stream running
        assert p.stdout is not None
        p.stdout.readline()
    time.sleep(0.5)
    player = subprocess.Popen(
        ["pacat", "--playback", "-d", "nullsink", "--raw", "--format=float32le", "--channels=1",
         f"--rate={RATE}", "--latency-msec=10", "--client-name=capturelatency-clicks"],
        stdin=subprocess.PIPE, env={**os.environ, **env})
    assert player.stdin is not None
    player.stdin.write(_clicks(seconds, random.Random(seed)).tobytes())
    player.stdin.close()
    player.wait(seconds + 10)
    results: dict[str, Any] = {}
    for s, p in procs.items():
        out, _ = p.communicate(timeout=seconds + 30)
        lines = out.strip().splitlines()
        results[s] = json.loads(lines[-1]) if lines and lines[-1].startswith("[") else []
    mon = rec.stop()
    clicks = [rec.t0 + i / RATE for i in onsets(mon, RATE)]
    lat: dict[str, list[float]] = {}
    for s, times in results.items():
        ms = []
        for c in clicks:
            after = [t for t in times if c - 0.005 <= t <= c + 0.3]
            if after:
                ms.append((min(after) - c) * 1e3)
        lat[s] = ms
    return {"clicks": len(clicks), "latency_ms": lat, "click_times": clicks, "chunk_times": results}


def summary(ms: list[float]) -> dict[str, float]:
    """Median, p95 and extremes of a list of latencies."""
    a = np.asarray(ms)
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "median": round(float(np.median(a)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "min": round(float(a.min()), 1), "max": round(float(a.max()), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subject", choices=SUBJECTS, help=argparse.SUPPRESS)
    ap.add_argument("--before", help="another venv's python: also runs before:duplex and before:duplex-aec")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--subjects", default="duplex,duplex-low,sounddevice")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.subject:
        print(json.dumps(_subject(a.subject, a.seconds)))
        return 0
    from duplex.testing.audio_server import pulse_null_sink

    subjects = tuple(a.subjects.split(","))
    if a.before:
        subjects += tuple(f"before:{s}" for s in subjects if s.startswith("duplex"))
    runs = []
    with pulse_null_sink(set_environ=False) as srv:
        for k in range(a.runs):
            runs.append(run_once(srv.env, a.seconds, subjects, seed=k, before=a.before))
            print(f"run {k + 1}: {runs[-1]['clicks']} clicks, "
                  + ", ".join(f"{s} {summary(v)}" for s, v in runs[-1]["latency_ms"].items()), flush=True)
    total = {s: summary([x for r in runs for x in r["latency_ms"][s]]) for s in subjects}
    print("| subject | clicks | median ms | p95 ms | min | max |\n|---|---:|---:|---:|---:|---:|")
    for s, v in total.items():
        print(f"| {s} | {v.get('n')} | {v.get('median')} | {v.get('p95')} | {v.get('min')} | {v.get('max')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": runs, "summary": total}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
