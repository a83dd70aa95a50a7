"""The real-audio-server leg: duplex and a PortAudio baseline on a PulseAudio null sink.

The virtual-device harness (:mod:`duplex.bench.scenarios`) models the sound card. Here the
card is real software: a PulseAudio daemon with a null sink (:mod:`duplex.testing.audio_server`),
whose monitor source gives back exactly what the sink played. For each implementation and
load (idle, cgil50, cgil100 from :mod:`duplex.bench.loads`) one run:

1. starts the implementation (playback to the default sink, capture of the default source,
   which is the sink's monitor);
2. plays a 10 ms click and finds it in the capture: the round-trip latency
   (play call -> sound in the monitor) on the same clock mapping as the rest of the run;
3. starts the load, plays a 1 kHz tone (24 kHz s16 mono for duplex, the same tone at
   48 kHz for the baseline) and calls ``interrupt()`` half-way through the run;
4. on the CAPTURED monitor signal measures gaps (1 ms RMS windows more than 20 dB below the
   tone's level for more than 2 ms, between tone onset and interrupt) and
   interrupt-to-silence (interrupt call -> last captured sample >= -60 dBFS), raw and minus
   the click's round-trip latency.

Implementations:

* ``duplex``: ``duplex.AudioEngine()`` on the default devices (cpal -> ALSA ``default`` ->
  pulse plugin); its own capture (16 kHz chunks read by a Python thread; a 2 s ring, so a
  starved reader loses nothing). Counters: ``stats().underruns``.
* ``portaudio-callback``: sounddevice ``OutputStream`` (48 kHz mono float32, block 480,
  ``latency='high'``) whose callback pops samples from a ``collections.deque``; capture by a
  sounddevice ``InputStream`` (``latency='high'``). Counters: callbacks flagged
  ``output_underflow`` (and ``input_overflow`` for the capture, which would corrupt the
  measurement itself).
* ``portaudio-blocking``: the cookbook style, ``sd.RawOutputStream.write`` of 40 ms blocks
  from a Python thread over a queue (``latency='high'``); same capture.

Alsa-lib/PortAudio gotcha: the server is started before the first device call in the
process (``AudioEngine()`` and ``import sounddevice``, which initialises PortAudio).

    python -m duplex.bench.realdevice            # full: 3 s per run, about 40 s in all
    python -m duplex.bench.realdevice --quick    # 1.5 s per run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..testing.audio_server import available, pulse_null_sink
from . import loads as L

__all__ = ["run", "available", "LOADS", "IMPLEMENTATIONS", "envelope_db", "find_gaps"]

#: Load name -> factory (None = idle).
LOADS: dict[str, Callable[[], L.Load] | None] = {
    "idle": None,
    "cgil50": lambda: L.CGilLoad(50),
    "cgil100": lambda: L.CGilLoad(100),
}
IMPLEMENTATIONS = ("duplex", "portaudio-callback", "portaudio-blocking")

TONE_HZ = 1000.0
TONE_AMP = 0.3
CLICK_MS = 10.0
CLICK_AMP = 0.5
WIN_MS = 1.0  # envelope window: one period of the 1 kHz tone
GAP_DB = 20.0  # a gap: envelope this far below the tone's level ...
GAP_MIN_MS = 2.0  # ... for longer than this
SILENCE = 1e-3  # -60 dBFS, as metrics.SILENCE_THRESHOLD
NOMINAL_DB = 20 * math.log10(TONE_AMP / math.sqrt(2))  # the tone's RMS level, -13.5 dBFS


# -- signal analysis ---------------------------------------------------------------------


def envelope_db(x: np.ndarray, rate: int, win_ms: float = WIN_MS) -> np.ndarray:
    """RMS in dBFS of consecutive ``win_ms`` windows."""
    w = max(1, int(round(rate * win_ms / 1000)))
    n = len(x) // w
    if n == 0:
        return np.zeros(0)
    rms = np.sqrt(np.mean(np.square(x[: n * w].reshape(n, w).astype(np.float64)), axis=1))
    return 20 * np.log10(rms + 1e-12)


def find_gaps(env: np.ndarray, level_db: float, win_ms: float = WIN_MS,
              drop_db: float = GAP_DB, min_ms: float = GAP_MIN_MS) -> list[float]:
    """Lengths (ms) of runs of windows below ``level_db - drop_db`` longer than ``min_ms``."""
    low = np.concatenate([[False], env < level_db - drop_db, [False]])
    edges = np.flatnonzero(np.diff(low.astype(np.int8)))
    runs = (edges[1::2] - edges[0::2]) * win_ms
    return [float(r) for r in runs if r > min_ms]


class _Capture:
    """Captured mono float blocks with their arrival times (``perf_counter``)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.blocks: list[np.ndarray] = []
        self.frames = 0
        self.t0 = math.inf  # perf_counter time of sample 0 (earliest consistent estimate)
        self.t_last = 0.0

    def add(self, block: np.ndarray, t: float) -> None:
        self.blocks.append(block)
        self.frames += len(block)
        # Sample `frames` arrived no later than t: t0 <= t - frames / rate.
        self.t0 = min(self.t0, t - self.frames / self.rate)
        self.t_last = t

    def lost_ms(self) -> float:
        """Wall time covered minus audio received (about the capture's buffering if nothing
        was lost; grows by whatever a starved capture dropped without telling)."""
        return (self.t_last - self.t0 - self.frames / self.rate) * 1e3

    def signal(self) -> np.ndarray:
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)

    def index(self, t: float) -> int:
        return max(0, int(round((t - self.t0) * self.rate)))

    def time(self, i: int) -> float:
        return self.t0 + i / self.rate


def _tone(rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (TONE_AMP * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def _click(rate: int) -> np.ndarray:
    t = np.arange(int(rate * CLICK_MS / 1000)) / rate
    return (CLICK_AMP * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def _analyse(cap: _Capture, marks: dict[str, float], tail_s: float) -> dict[str, Any]:
    """Round trip, gaps and interrupt-to-silence on the captured monitor signal."""
    x = cap.signal()
    rate = cap.rate
    w = max(1, int(round(rate * WIN_MS / 1000)))
    env = envelope_db(x, rate)
    out: dict[str, Any] = {"captured_s": round(len(x) / rate, 3), "capture_lag_ms": round(cap.lost_ms(), 1)}

    def onset(after_t: float, db: float) -> float | None:
        i0 = cap.index(after_t) // w
        hits = np.flatnonzero(env[i0:] > db)
        return None if len(hits) == 0 else cap.time((i0 + int(hits[0])) * w)

    t_click = onset(marks["click"], -40.0)
    rt = None if t_click is None else (t_click - marks["click"]) * 1e3
    out["roundtrip_ms"] = None if rt is None else round(float(rt), 1)
    # Tone: from its onset (+ 20 ms) to where the interrupt can first be heard.
    t_on = onset(marks["tone"], -40.0)
    t_int = marks["interrupt"]
    gaps: list[float] = []
    level = None
    if t_on is not None:
        out["tone_onset_ms"] = round((t_on - marks["tone"]) * 1e3, 1)
        a = cap.index(t_on + 0.02) // w
        b = cap.index(t_int + (rt or 0) / 1e3 - 0.01) // w
        seg = env[a:b]
        if len(seg):
            level = float(np.median(seg))
            # Gaps are judged against the tone's nominal level (the null sink is bit-exact
            # at unity volume), not the median, which a mostly-starved run pulls down.
            gaps = find_gaps(seg, NOMINAL_DB)
        out["tone_window_ms"] = round(len(seg) * WIN_MS, 0)
    out["tone_level_dbfs"] = None if level is None else round(level, 1)
    out["gaps"] = len(gaps)
    out["gap_ms"] = round(sum(gaps), 1)
    out["gap_max_ms"] = round(max(gaps, default=0.0), 1)
    # Was the tone still audible right when interrupt() was called (a starved output may
    # already be silent, which makes interrupt-to-silence trivially short)?
    i_int = cap.index(t_int)
    pre = env[max(0, i_int // w - 5) : i_int // w]
    out["audible_at_interrupt"] = bool(len(pre) and np.max(pre) > NOMINAL_DB - GAP_DB)
    # Interrupt-to-silence: last audible sample after the interrupt call.
    end = len(x)
    loud = np.flatnonzero(np.abs(x[i_int:end]) >= SILENCE)
    if end - i_int < rate * 0.1:
        out["interrupt_ms"] = None
        out["interrupt_note"] = "capture ended before interrupt"
    elif len(loud) == 0:
        out["interrupt_ms"] = 0.0
    elif i_int + int(loud[-1]) >= end - int(0.05 * rate):
        out["interrupt_ms"] = None  # still sounding at the end of capture: censored
        out["interrupt_note"] = f"still audible {tail_s:.1f} s after interrupt"
    else:
        out["interrupt_ms"] = round(float(loud[-1] + 1) / rate * 1e3, 1)
    out["interrupt_minus_rt_ms"] = (
        None if out["interrupt_ms"] is None or rt is None else round(float(out["interrupt_ms"] - rt), 1)
    )
    return out


class _PacatCapture(_Capture):
    """An independent capture of the monitor: ``pacat --record`` (a separate process, so
    no GIL) into a file; a thread polls the file size to map samples to time. The mapping
    is fixed by the prompt polls before the load starts, and samples are never lost."""

    def __init__(self, env: dict[str, str], path: str, rate: int = 48_000) -> None:
        super().__init__(rate)
        self.path = path
        self._f = open(path, "wb")
        self.proc = subprocess.Popen(
            ["pacat", "--record", "-d", "nullsink.monitor", "--raw", "--format=float32le",
             "--channels=1", f"--rate={rate}", "--latency-msec=10", "--client-name=duplex-bench-monitor"],
            stdout=self._f, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **env}, start_new_session=True)
        self._stop = threading.Event()
        self._poll = threading.Thread(target=self._poller, name="rd-pacat-poll", daemon=True)
        self._poll.start()

    def _poller(self) -> None:
        seen = 0
        while not self._stop.is_set():
            try:
                n = os.path.getsize(self.path) // 4
            except OSError:
                n = seen
            t = time.perf_counter()
            if n > seen:
                self.frames = n
                self.t0 = min(self.t0, t - n / self.rate)
                self.t_last = t
                seen = n
            self._stop.wait(0.002)

    def close(self) -> None:
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
        self.blocks = [data[: self.frames]]
        with contextlib.suppress(OSError):
            os.unlink(self.path)


# -- implementations ---------------------------------------------------------------------


class _DuplexImpl:
    name = "duplex"

    def __init__(self) -> None:
        from ..engine import AudioEngine

        # default devices: cpal -> ALSA default -> pulse; the monitor's loopback is the measure
        self.engine = AudioEngine(echo_cancellation=False)
        self.cap = _Capture(16_000)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="rd-reader", daemon=True)

    def start(self) -> None:
        self.engine.start()
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            a = self.engine.read_array(0.1)
            if a is not None:
                self.cap.add(a.astype(np.float32) / 32768.0, time.perf_counter())

    @staticmethod
    def _pcm24(x48_or_24: np.ndarray) -> np.ndarray:
        return np.round(x48_or_24 * 32767).astype("<i2")

    def click(self) -> None:
        self.engine.play(self._pcm24(_click(24_000)))
        self.engine.end_turn()

    def play_tone(self, seconds: float) -> None:
        # One call, like the baseline's one deque.extend: the measurement is about the audio
        # path, not about a Python feeder starved by the load (100 ms chunks fed under
        # cgil100 arrive at about real time and the turn runs dry).
        self.engine.play(self._pcm24(_tone(24_000, seconds)))

    def interrupt(self) -> None:
        self.engine.interrupt()

    def counters(self) -> dict[str, Any]:
        s = self.engine.stats()
        return {"underruns": s.underruns, "underrun_silence_ms": round(s.underrun_silence_ms, 1),
                "capture_overflows": s.capture_overflows, "device_errors": s.device_errors,
                "last_device_error": s.last_device_error, "period_frames": s.period_frames,
                "out_rate_hz": s.output_rate_hz, "jitter_p99_ms": round(s.jitter_p99_ms, 2)}

    def stop(self) -> None:
        self._counters = self.counters()
        self._stop.set()
        self._reader.join(2.0)
        self.engine.close()


class _PortAudioImpl:
    """sounddevice output (callback over a deque, or blocking writes) + InputStream capture."""

    RATE = 48_000
    BLOCK = 480

    def __init__(self, mode: str) -> None:
        import sounddevice as sd

        self.sd = sd
        self.mode = mode
        self.name = f"portaudio-{mode}"
        self.cap = _Capture(self.RATE)
        self.out_underflows = 0
        self.in_overflows = 0
        self.callbacks = 0
        self._play: deque[float] = deque()
        self._q: queue.Queue[bytes | None] = queue.Queue()
        self._flush = threading.Event()
        self._writer: threading.Thread | None = None
        self.inp = sd.InputStream(samplerate=self.RATE, channels=1, dtype="float32", blocksize=self.BLOCK,
                                  latency="high", callback=self._in_cb)
        if mode == "callback":
            self.out = sd.OutputStream(samplerate=self.RATE, channels=1, dtype="float32", blocksize=self.BLOCK,
                                       latency="high", callback=self._out_cb)
        else:
            self.out = sd.RawOutputStream(samplerate=self.RATE, channels=1, dtype="float32",
                                          blocksize=self.BLOCK, latency="high")

    def _in_cb(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        if status.input_overflow:
            self.in_overflows += 1
        self.cap.add(indata[:, 0].copy(), time.perf_counter())

    def _out_cb(self, outdata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        self.callbacks += 1
        if status.output_underflow:
            self.out_underflows += 1
        take = min(frames, len(self._play))
        outdata[take:, 0] = 0.0
        if take:
            popleft = self._play.popleft
            outdata[:take, 0] = [popleft() for _ in range(take)]

    def _write_loop(self) -> None:
        silence = np.zeros(self.BLOCK * 4, np.float32).tobytes()
        while True:
            try:
                data = self._q.get(timeout=0.01)
            except queue.Empty:
                data = silence  # keep the stream fed, like a client that writes silence
            if data is None:
                return
            if self._flush.is_set():
                data = silence
            underflowed = self.out.write(data)
            self.callbacks += 1
            if underflowed:
                self.out_underflows += 1

    def start(self) -> None:
        self.inp.start()
        self.out.start()
        if self.mode == "blocking":
            self._writer = threading.Thread(target=self._write_loop, name="rd-writer", daemon=True)
            self._writer.start()

    def _send(self, x: np.ndarray) -> None:
        if self.mode == "callback":
            self._play.extend(x.tolist())
        else:
            self._flush.clear()
            step = self.BLOCK * 4  # 40 ms writes
            for i in range(0, len(x), step):
                self._q.put(x[i : i + step].tobytes())

    def click(self) -> None:
        self._send(_click(self.RATE))

    def play_tone(self, seconds: float) -> None:
        self._send(_tone(self.RATE, seconds))

    def interrupt(self) -> None:
        if self.mode == "callback":
            self._play.clear()
        else:
            self._flush.set()  # what is queued is dropped; the block in write() still plays
            with contextlib.suppress(queue.Empty):
                while True:
                    self._q.get_nowait()

    def counters(self) -> dict[str, Any]:
        return {"underruns": self.out_underflows, "output_underflow": self.out_underflows,
                "input_overflow": self.in_overflows, "callbacks_or_writes": self.callbacks,
                "out_latency_ms": round(self.out.latency * 1e3, 1),
                "in_latency_ms": round(self.inp.latency * 1e3, 1)}

    def stop(self) -> None:
        if self._writer is not None:
            self._q.put(None)
            self._writer.join(2.0)
        self._counters = self.counters()
        for s in (self.out, self.inp):
            with contextlib.suppress(Exception):
                s.stop()
            with contextlib.suppress(Exception):
                s.close()


def _make(name: str) -> Any:
    if name == "duplex":
        return _DuplexImpl()
    return _PortAudioImpl(name.split("-", 1)[1])


def _run_one(impl_name: str, load_name: str, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    tail_s = 0.6
    mon = _PacatCapture(env, os.path.join(tempfile.gettempdir(), f"duplex-rd-{os.getpid()}.f32"))
    impl = _make(impl_name)
    load = LOADS[load_name]() if LOADS[load_name] else None
    marks: dict[str, float] = {}
    impl.start()
    try:
        time.sleep(0.4)  # streams settle
        marks["click"] = time.perf_counter()
        impl.click()
        time.sleep(0.45)
        if load is not None:
            load.prepare()
            load.start()
            time.sleep(0.1)
        marks["tone"] = time.perf_counter()
        impl.play_tone(seconds + 1.0)
        # interrupt half-way through the run (1.5 s into a 3 s run)
        time.sleep(max(0.0, marks["tone"] + seconds / 2 - time.perf_counter()))
        marks["interrupt"] = time.perf_counter()
        impl.interrupt()
        time.sleep(tail_s)
        if load is not None:
            load.stop()
        time.sleep(0.05)
    finally:
        if load is not None:
            load.stop()
        impl.stop()
        mon.close()
    row: dict[str, Any] = {"implementation": impl_name, "load": load_name, "seconds": seconds}
    row.update(_analyse(impl.cap, marks, tail_s))
    row["pacat"] = _analyse(mon, marks, tail_s)
    row.update(impl._counters)
    if load is not None:
        row["load_summary"] = load.summary()
        load.cleanup()
    return row


# -- report ------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    return "—" if v is None else str(v)


def _markdown(rows: list[dict[str, Any]], server: dict[str, Any]) -> str:
    lines = [
        f"PulseAudio null sink (48 kHz stereo, keeper stream), server up in {server.get('startup_s')} s, "
        f"sink latency {server.get('sink_latency_us')} µs at start. Capture = the sink's monitor.",
        "",
        "Own capture = duplex's capture / a sounddevice InputStream; pacat = an independent "
        "`pacat --record` of the monitor (separate process, no GIL) as a cross-check.",
        "",
        "| implementation | load | round trip ms | gaps (> 2 ms, -20 dB) | gap ms (max) "
        "| interrupt→silence ms raw | minus round trip | pacat: round trip / gaps / gap ms / int. raw / minus rt "
        "| underruns | own-capture lag ms | other |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['implementation']} | {r['load']} | error: {r['error']} |||||||| |")
            continue
        if r["implementation"] == "duplex":
            other = f"period {r.get('period_frames')} @ {r.get('out_rate_hz')} Hz, capture overflows {r.get('capture_overflows')}"
            und = f"{r['underruns']} ({r.get('underrun_silence_ms')} ms)"
        else:
            other = (f"input_overflow {r.get('input_overflow')}, out latency {r.get('out_latency_ms')} ms, "
                     f"{r.get('callbacks_or_writes')} callbacks/writes")
            und = f"{r['output_underflow']} output_underflow"
        p = r.get("pacat") or {}
        pc = (f"{_fmt(p.get('roundtrip_ms'))} / {p.get('gaps')} / {p.get('gap_ms')} / "
              f"{_fmt(p.get('interrupt_ms'))} / {_fmt(p.get('interrupt_minus_rt_ms'))}")
        if not p.get("audible_at_interrupt", True):
            pc += " (silent at interrupt)"
        if r["implementation"] == "duplex" and r.get("device_errors"):
            other += f", device errors {r['device_errors']} ({r.get('last_device_error')})"
        if not r.get("audible_at_interrupt", True):
            other += "; own capture silent when interrupt() was called"
        if r.get("interrupt_note"):
            other += f"; {r['interrupt_note']}"
        lines.append(
            f"| {r['implementation']} | {r['load']} | {_fmt(r.get('roundtrip_ms'))} "
            f"| {r['gaps']} | {r['gap_ms']} ({r['gap_max_ms']}) | {_fmt(r.get('interrupt_ms'))} "
            f"| {_fmt(r.get('interrupt_minus_rt_ms'))} | {pc} | {und} | {_fmt(r.get('capture_lag_ms'))} | {other} |"
        )
    return "\n".join(lines)


def run(quick: bool = False, implementations: tuple[str, ...] = IMPLEMENTATIONS,
        loads: tuple[str, ...] = tuple(LOADS)) -> dict[str, Any]:
    """Runs every implementation under every load on a fresh PulseAudio null sink.

    Returns ``{"rows": [...], "markdown": str, "server": {...}}``; if pulseaudio is not
    installed, ``{"rows": [], "markdown": ..., "skipped": reason}``.
    """
    if not available():
        reason = "pulseaudio/pactl/pacat not installed (scripts/audio-server.sh install)"
        return {"rows": [], "markdown": f"skipped: {reason}", "skipped": reason}
    seconds = 1.5 if quick else 3.0
    rows: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with pulse_null_sink() as srv:
        server = {"startup_s": round(srv.startup_s, 2), "sink_latency_us": srv.sink_latency_us(),
                  "pid": srv.pid}
        # PortAudio reads the ALSA config when it initialises: (re)initialise it now that
        # the server is up, in case sounddevice was imported earlier in this process.
        if "sounddevice" in sys.modules and any(i != "duplex" for i in implementations):
            sd = sys.modules["sounddevice"]
            with contextlib.suppress(Exception):
                sd._terminate()
                sd._initialize()
        L.calibrate_sum_range()
        for impl in implementations:
            for load in loads:
                try:
                    rows.append(_run_one(impl, load, seconds, srv.env))
                except Exception as e:  # noqa: BLE001 - report, keep going
                    rows.append({"implementation": impl, "load": load, "error": f"{type(e).__name__}: {e}"})
    server["total_s"] = round(time.monotonic() - t_start, 1)
    return {"rows": rows, "markdown": _markdown(rows, server), "server": server}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1.5 s per run instead of 3 s")
    p.add_argument("--json", help="also write the rows to this JSON file")
    a = p.parse_args(argv)
    res = run(quick=a.quick)
    print(res["markdown"])
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
