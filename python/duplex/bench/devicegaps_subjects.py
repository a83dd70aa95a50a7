"""The subjects of :mod:`duplex.bench.devicegaps`, each run in its own child process.

A child process runs one implementation in full duplex (its microphone open and read by
Python, as in a conversation), one task (``gaps``, ``bargein`` or ``capture``) and, for
``gaps``, the in-process GIL load. It writes what it did (time marks on the shared
``CLOCK_MONOTONIC`` clock, which is what :func:`time.perf_counter` reads on Linux) and what
the implementation's own counters said to a JSON file. What was heard is measured by the
parent's independent recorder, not here.

    python -m duplex.bench.devicegaps_subjects SPEC_JSON OUT_JSON   # (the parent does this)

Implementations (:data:`SUBJECTS`):

* ``duplex-<ms>``: :class:`duplex.AudioEngine` on the default devices through cpal's ALSA
  host (``host="alsa"``: ALSA ``default`` -> pulse plugin; before the native host became the
  default this was the engine's default path) with a device buffer of ``<ms>`` (``latency=<ms>`` once the
  engine has it, else ``period_frames`` = half of it at 48 kHz); its capture read by a Python
  thread in 20 ms chunks; echo cancellation on, as in a conversation (``duplex-<ms>-noaec``: off).
* ``pulse-<ms>``: the same engine on its native PulseAudio host (``host="pulse"``: its own
  protocol client, a real-time device thread, interrupts that rewrite the server's queue);
  ``pulse-<ms>-noaec``: echo cancellation off.
* ``sd-callback`` / ``sd-callback-150``: a python-sounddevice ``OutputStream`` at 24 kHz
  whose callback copies from a deque of chunks (latency: sounddevice's default, which is
  ``'high'``, about 35 ms here; or 150 ms), and an ``InputStream`` at 16 kHz, 20 ms blocks,
  whose callback hands chunks to a reader thread through a queue.
* ``cookbook``: the Live API cookbook's shape on sounddevice: an asyncio loop with a play
  task (``await queue.get()``, ``await asyncio.to_thread(stream.write, chunk)``) and a mic
  task (``await asyncio.to_thread(stream.read, 320)``), default latency. Interrupt clears
  the queue; what is in ``write()`` and the device buffer plays out.
* ``sd-input``: only a naive ``InputStream`` (capture latency baseline).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import queue
import random
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import sounddevice as sd

    from ..engine import AudioEngine

__all__ = ["SUBJECTS", "make_subject", "main"]

OUT_RATE = 24_000  # what the Live API sends
IN_RATE = 16_000  # what it wants
CHUNK_IN = 320  # 20 ms at 16 kHz
FEED_CHUNK_MS = 40
FEED_SPEED = 1.25  # the service sends faster than real time ...
FEED_HEAD_MS = 200  # ... after a head start
TONE_HZ, TONE_AMP = 1000.0, 0.3
CLICK_MS, CLICK_AMP = 10.0, 0.5

SUBJECTS = ("duplex-20", "duplex-80", "duplex-150", "duplex-80-noaec", "pulse-80", "pulse-150", "pulse-150-noaec",
            "sd-callback",
            "sd-callback-150", "cookbook", "sd-input")


def tone_i16(rate: int, seconds: float, amp: float = TONE_AMP) -> np.ndarray:
    """A continuous 1 kHz tone as int16 (phase-continuous however it is chunked later)."""
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * 32767 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)


class _Reader:
    """Captured 16 kHz chunks with their arrival times in Python."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.times: list[float] = []

    def add(self, chunk: np.ndarray) -> None:
        self.times.append(time.perf_counter())
        self.chunks.append(chunk)


class DuplexSubject:
    """duplex's AudioEngine with a device buffer of ``latency_ms``."""

    def __init__(self, latency_ms: int, output: bool = True, echo_cancellation: bool | None = None,
                 host: str | None = None) -> None:
        from duplex import AudioEngine

        self.cap: _Reader = _Reader()
        self.latency_ms = latency_ms
        params = inspect.signature(AudioEngine).parameters
        if "latency" in params:
            self.setting: dict[str, int] = {"latency": latency_ms}
        else:  # until the engine has a latency setting: two periods of half the buffer
            self.setting = {"period_frames": int(48_000 * latency_ms / 2000)}
        extra: dict[str, Any] = {} if host is None else {"host": host}
        self.engine: AudioEngine = AudioEngine(output_device=None if output else False, echo_cancellation=echo_cancellation,
                                  **self.setting, **extra)
        self._stop = threading.Event()
        self.read_errors: int = 0
        self._thread = threading.Thread(target=self._read, name="subject-reader", daemon=True)

    def start(self) -> None:
        self.engine.start()
        self._thread.start()

    def _read(self) -> None:
        from duplex.errors import DuplexError

        while not self._stop.is_set():
            try:
                a = self.engine.read_array(0.1)
            except DuplexError:
                # "the device is gone": a starved stream the supervisor rebuilds; a client
                # keeps reading, as LiveConversation does
                self.read_errors += 1
                self._stop.wait(0.05)
                continue
            if a is not None:
                self.cap.add(a)

    def play(self, chunk: np.ndarray) -> None:
        self.engine.play(chunk)

    def end_turn(self) -> None:
        self.engine.end_turn()

    def interrupt(self) -> None:
        self.engine.interrupt()

    def counters(self) -> dict[str, Any]:
        s = self.engine.stats().as_dict()
        keep = ("underrun", "device", "overflow", "period", "buffer", "latency", "realtime", "host", "xrun", "thread")
        out = {k: v for k, v in s.items() if any(w in k for w in keep) and not isinstance(v, (list, dict))}
        out["setting"] = self.setting
        out["echo_cancellation"] = self.engine.echo_cancellation
        out["read_errors"] = self.read_errors
        return out

    def stop(self) -> dict[str, Any]:
        c = self.counters()
        self._stop.set()
        self._thread.join(2.0)
        self.engine.close()
        return c


class _Chunks:
    """A deque of int16 chunks that a PortAudio callback copies from (no per-sample Python)."""

    def __init__(self) -> None:
        self.q: collections.deque[np.ndarray] = collections.deque()
        self.head: np.ndarray | None = None
        self.pos = 0

    def fill(self, out: np.ndarray) -> None:
        n, i = len(out), 0
        while i < n:
            if self.head is None or self.pos >= len(self.head):
                try:
                    self.head, self.pos = self.q.popleft(), 0
                except IndexError:
                    out[i:] = 0
                    return
            take = min(n - i, len(self.head) - self.pos)
            out[i : i + take] = self.head[self.pos : self.pos + take]
            i += take
            self.pos += take

    def clear(self) -> None:
        self.q.clear()
        self.head = None


class SdCallbackSubject:
    """A sounddevice output callback over a deque of chunks, plus a callback InputStream."""

    def __init__(self, latency: Any = None, output: bool = True) -> None:
        import sounddevice as sd

        self.cap: _Reader = _Reader()
        self.underflows: int = 0
        self.overflows: int = 0
        self.callbacks: int = 0
        self.buf: _Chunks = _Chunks()
        self._inq: queue.Queue[np.ndarray | None] = queue.Queue()
        lat = {} if latency is None else {"latency": latency}
        self.inp: sd.InputStream = sd.InputStream(samplerate=IN_RATE, channels=1, dtype="int16",
                                                  blocksize=CHUNK_IN, callback=self._in_cb)
        self.out: sd.OutputStream | None = (
            sd.OutputStream(samplerate=OUT_RATE, channels=1, dtype="int16", callback=self._out_cb, **lat)
            if output else None)
        self._thread = threading.Thread(target=self._read, name="subject-reader", daemon=True)

    def _in_cb(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        self._inq.put(indata[:, 0].copy())

    def _out_cb(self, outdata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        self.callbacks += 1
        if status.output_underflow:
            self.underflows += 1
        self.buf.fill(outdata[:, 0])

    def _read(self) -> None:
        while (c := self._inq.get()) is not None:
            self.cap.add(c)

    def start(self) -> None:
        self._thread.start()
        self.inp.start()
        if self.out is not None:
            self.out.start()

    def play(self, chunk: np.ndarray) -> None:
        self.buf.q.append(chunk)

    def end_turn(self) -> None:
        pass

    def interrupt(self) -> None:
        self.buf.clear()

    def counters(self) -> dict[str, Any]:
        c = {"output_underflow": self.underflows, "input_overflow": self.overflows, "callbacks": self.callbacks,
             "in_latency_ms": round(self.inp.latency * 1e3, 1)}
        if self.out is not None:
            c["out_latency_ms"] = round(self.out.latency * 1e3, 1)
        return c

    def stop(self) -> dict[str, Any]:
        c = self.counters()
        for s in (self.out, self.inp):
            if s is not None:
                with contextlib.suppress(Exception):
                    s.stop()
                    s.close()
        self._inq.put(None)
        self._thread.join(2.0)
        return c


class CookbookSubject:
    """The cookbook's asyncio client: blocking ``write``/``read`` through ``asyncio.to_thread``."""

    def __init__(self) -> None:
        import sounddevice as sd

        self.cap: _Reader = _Reader()
        self.underflows: int = 0
        self.writes: int = 0
        self.overflows: int = 0
        self.out: sd.RawOutputStream = sd.RawOutputStream(samplerate=OUT_RATE, channels=1, dtype="int16")
        self.inp: sd.RawInputStream = sd.RawInputStream(samplerate=IN_RATE, channels=1, dtype="int16")
        self.loop: asyncio.AbstractEventLoop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="subject-asyncio", daemon=True)
        self.q: asyncio.Queue[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def _setup(self) -> None:
        self.q = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._play()), asyncio.create_task(self._listen())]

    async def _play(self) -> None:
        assert self.q is not None
        while True:
            data = await self.q.get()
            if await asyncio.to_thread(self.out.write, data):
                self.underflows += 1
            self.writes += 1

    async def _listen(self) -> None:
        while True:
            data, overflowed = await asyncio.to_thread(self.inp.read, CHUNK_IN)
            self.overflows += bool(overflowed)
            self.cap.add(np.frombuffer(bytes(data), dtype="<i2").copy())

    def start(self) -> None:
        self.out.start()
        self.inp.start()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._setup(), self.loop).result(5)

    def play(self, chunk: np.ndarray) -> None:
        assert self.q is not None
        self.loop.call_soon_threadsafe(self.q.put_nowait, chunk.tobytes())

    def end_turn(self) -> None:
        pass

    def interrupt(self) -> None:
        def clear() -> None:
            assert self.q is not None
            while not self.q.empty():
                self.q.get_nowait()

        self.loop.call_soon_threadsafe(clear)

    def counters(self) -> dict[str, Any]:
        return {"output_underflow": self.underflows, "writes": self.writes, "input_overflow": self.overflows,
                "out_latency_ms": round(self.out.latency * 1e3, 1), "in_latency_ms": round(self.inp.latency * 1e3, 1)}

    def stop(self) -> dict[str, Any]:
        c = self.counters()

        async def finish() -> None:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # a read()/write() still running in the executor must return before its stream
            # is closed (closing under it crashes PortAudio)
            await self.loop.shutdown_default_executor()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(finish(), self.loop).result(5)
        for s in (self.out, self.inp):
            with contextlib.suppress(Exception):
                s.stop()
                s.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(2.0)
        return c


def make_subject(name: str, output: bool = True) -> Any:
    """The implementation called ``name`` (one of :data:`SUBJECTS`), not started yet."""
    # duplex-<ms> on cpal's ALSA host, pulse-<ms> on the native PulseAudio host; a -noaec
    # suffix turns echo cancellation off.
    if name.startswith(("pulse-", "duplex-")):
        parts = name.split("-")
        return DuplexSubject(int(parts[1]), output=output, host="pulse" if parts[0] == "pulse" else "alsa",
                             echo_cancellation=False if "noaec" in parts else None)
    if name == "sd-callback":
        return SdCallbackSubject(None, output)
    if name == "sd-callback-150":
        return SdCallbackSubject(0.150, output)
    if name == "cookbook":
        return CookbookSubject()
    if name == "sd-input":
        return SdCallbackSubject(None, output=False)
    raise ValueError(f"unknown subject {name!r}; choose from {', '.join(SUBJECTS)}")


def _feed(subject: Any, pcm: np.ndarray, marks: dict[str, Any]) -> None:
    """Feeds ``pcm`` in 40 ms chunks like the service: 1.25x real time after a head start."""
    step = OUT_RATE * FEED_CHUNK_MS // 1000
    t0 = time.perf_counter()
    marks["tone"] = t0
    sent = 0
    while sent < len(pcm):
        due = OUT_RATE * FEED_HEAD_MS / 1000 + FEED_SPEED * OUT_RATE * (time.perf_counter() - t0)
        while sent < len(pcm) and sent < due:
            subject.play(pcm[sent : sent + step])
            sent += step
        time.sleep(0.01)
    subject.end_turn()
    marks["fed"] = time.perf_counter()


def _task_gaps(subject: Any, spec: dict[str, Any], marks: dict[str, Any]) -> dict[str, Any]:
    from . import loads as L

    load = None
    if spec.get("gil"):
        L.calibrate_sum_range()
        load = L.CGilLoad(50, 100)
        load.prepare()
    time.sleep(0.6)  # streams settle
    if load is not None:
        load.start()
        time.sleep(0.2)
    try:
        _feed(subject, tone_i16(OUT_RATE, spec["seconds"]), marks)
        # the tail: what the feed queued ahead plays out, a gap may have delayed it
        time.sleep(max(0.0, marks["tone"] + spec["seconds"] + 0.6 - time.perf_counter()))
    finally:
        if load is not None:
            load.stop()
    return {"load_summary": load.summary() if load is not None else None}


def _task_bargein(subject: Any, spec: dict[str, Any], marks: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(spec.get("seed", 1))
    time.sleep(0.6)
    click = tone_i16(OUT_RATE, CLICK_MS / 1000, CLICK_AMP)
    marks["click"] = time.perf_counter()
    subject.play(click)
    subject.end_turn()
    time.sleep(0.6)
    tone = tone_i16(OUT_RATE, 3.0)
    step = OUT_RATE * FEED_CHUNK_MS // 1000
    marks["tones"], marks["interrupts"] = [], []
    for _ in range(spec["interrupts"]):
        marks["tones"].append(time.perf_counter())
        for i in range(0, len(tone), step):  # a long answer, all of it already received
            subject.play(tone[i : i + step])
        time.sleep(rng.uniform(0.6, 0.9))
        marks["interrupts"].append(time.perf_counter())
        subject.interrupt()
        time.sleep(0.7)
    return {}


def _task_capture(subject: Any, spec: dict[str, Any], marks: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.6)
    # The clicks come from another process, straight into the sink (not through the subject).
    marks["clicks_start"] = time.perf_counter()
    p = subprocess.run(["pacat", "--playback", "-d", "nullsink", "--raw", "--format=float32le", "--channels=1",
                        "--rate=48000", "--latency-msec=10", spec["click_file"]],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    time.sleep(0.3)
    np.save(spec["capture_file"], np.concatenate(subject.cap.chunks) if subject.cap.chunks else np.zeros(0, np.int16))
    return {"pacat_rc": p.returncode, "chunk_times": subject.cap.times,
            "chunk_lens": [len(c) for c in subject.cap.chunks]}


def run_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs one task on one subject (both named in ``spec``); returns marks and counters."""
    task = spec["task"]
    subject = make_subject(spec["subject"])  # full duplex, as in a conversation
    marks: dict[str, Any] = {"started": time.perf_counter()}
    subject.start()
    try:
        extra = {"gaps": _task_gaps, "bargein": _task_bargein, "capture": _task_capture}[task](subject, spec, marks)
    finally:
        counters = subject.stop()
    return {"marks": marks, "counters": counters, **extra}


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``SPEC_JSON OUT_JSON``."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    try:
        res = run_task(spec)
    except Exception as e:  # noqa: BLE001 - the parent reports it in the row
        res = {"error": f"{type(e).__name__}: {e}"}
    with open(args[1], "w") as f:
        json.dump(res, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
