"""Barge-in below the ring: can the host take back audio its device buffer already holds?

``interrupt()`` fades what duplex's own ring holds; what the device buffer below it holds
(20-150 ms, chosen for robustness) has left duplex and plays out. Only the host can take it
back. This module asks each host directly, with no duplex code in the audio path, and judges
by what a separate recorder (``pacat`` on the null sink's monitor) hears:

* ``alsa-cookbook``: ALSA ``default`` (the pulse plugin, as cpal uses it): at the interrupt the
  queue is cleared and the device buffer plays out. This is the cookbook design.
* ``alsa-rewind``: ``snd_pcm_rewind(snd_pcm_rewindable())``, then the tone's own continuation
  faded out over ``FADE_MS`` is written where the rewind put the write pointer.
* ``alsa-drop``: ``snd_pcm_drop`` + ``snd_pcm_prepare``, then the faded continuation.
* ``pulse-cookbook``: PulseAudio's own protocol (libpulse), a playback stream whose server-side
  queue (``tlength``) is the device buffer; it plays out.
* ``pulse-flush``: ``pa_stream_flush`` (the server drops its queue at once).
* ``pulse-rewrite``: ask the server for its read index R and the sink's fill S
  (``pa_stream_update_timing_info``; asked again after the sink's next read if that is due
  within ``host_streams.GUARD_MS``), then overwrite the queue from ``R + S + margin`` with
  the faded continuation and silence (``pa_stream_write`` with ``PA_SEEK_ABSOLUTE``): the
  server drops what was queued there and plays the fade.
* ``duplex``: ``duplex.AudioEngine(latency=...)`` (cpal -> ALSA -> pulse plugin) with the same
  device buffer, ``interrupt()``: what the engine does today.

The libraries are reached through ``ctypes`` (``libasound.so.2``, ``libpulse.so.0``: the
runtime libraries a sound server installs; no -dev package, no compiler). The tone is 997 Hz,
which does not divide the rate, so an abrupt cut lands at a random phase and shows as a step.

Per run: ``flush_to_silence_ms`` (interrupt call -> last sample above -40 dBFS at the recorder),
``roundtrip_ms`` (a click written to the idle stream -> its onset at the recorder: the
recording chain's own delay, for calibration), ``step_ratio`` (largest sample-to-sample step
around the end of the sound over the tone's own largest step: about 1 for a fade, up to
``AMP/step`` = 7.7 for a cut), ``fade`` (peak of the last 1 ms of sound below half the tone's),
``tone_heard_frames`` (onset to last audible sample, in stream frames: clock-free).

    python -m duplex.bench.host_flush                    # 20/80/150 ms, 3 repetitions
    python -m duplex.bench.host_flush --latency 80 --reps 1 --methods pulse-rewrite,alsa-rewind
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np

from .host_streams import RATE, _Alsa, _Pulse

__all__ = ["METHODS", "run_method", "run", "summary", "main"]

TONE_HZ = 997.0
AMP = 0.3
FADE_MS = 5.0
CLICK_MS = 10.0
LOUD = 10 ** (-40 / 20)  # -40 dBFS
TONE_STEP = 2 * math.pi * TONE_HZ * AMP / RATE  # the tone's largest sample-to-sample step

METHODS = ("alsa-cookbook", "alsa-rewind", "alsa-drop", "pulse-cookbook", "pulse-flush", "pulse-rewrite", "duplex",
           "duplex-pulse")


def _tone(k0: int, n: int, gain: np.ndarray | float = 1.0) -> np.ndarray:
    """Frames ``k0..k0+n`` of the tone (positions are stream frame indexes), as int16."""
    k = np.arange(k0, k0 + n, dtype=np.float64)
    return np.round(gain * AMP * 32767 * np.sin(2 * np.pi * TONE_HZ * k / RATE)).astype("<i2")


def _fade(n: int) -> np.ndarray:
    """Raised cosine from 1 to 0 over n frames (the engine's fade shape)."""
    return 0.5 * (1 + np.cos(np.pi * (np.arange(n) + 1) / n))


def _click() -> np.ndarray:
    n = int(RATE * CLICK_MS / 1000)
    return np.round(0.5 * 32767 * np.sin(2 * np.pi * 1000.0 * np.arange(n) / RATE)).astype("<i2")


# -- one run per method --------------------------------------------------------------------


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), "<i2")


def _fade_at(k0: int) -> np.ndarray:
    n = int(RATE * FADE_MS / 1000)
    return _tone(k0, n, _fade(n))


def _take(out: _Alsa | _Pulse, tone_s: float, marks: dict[str, float], tail_s: float,
          take_back: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """One take on a host stream: a click, the tone in writes of one period (so the device
    buffer stays full), the interrupt, the method's ``take_back`` (given what was read just
    before the interrupt), then ``tail_s`` of silence to hear it by."""
    info: dict[str, Any] = {"period_frames": out.period_frames, "buffer_frames": out.buffer_frames}
    marks["click"] = time.perf_counter()
    out.write(np.concatenate([_click(), _silence(0.4)]))
    end = out.pos + int(tone_s * RATE)
    while out.pos < end:
        out.write(_tone(out.pos, min(out.period_frames, end - out.pos)))
    info.update(out.at_interrupt())
    marks["interrupt"] = time.perf_counter()
    info.update(take_back(info))
    out.write(_silence(tail_s))
    out.close()
    return info


def _run_alsa(method: str, latency_ms: float, tone_s: float, marks: dict[str, float]) -> dict[str, Any]:
    pcm = _Alsa("default", latency_ms)

    def take_back(info: dict[str, Any]) -> dict[str, Any]:
        if method == "alsa-rewind":
            n = pcm.rewind(info["rewindable_frames"])
            pcm.pos -= max(n, 0)
        elif method == "alsa-drop":
            heard = pcm.pos - pcm.delay()
            pcm.drop_prepare()
            n, pcm.pos = pcm.pos - heard, heard
        else:
            return {}  # the cookbook: the device buffer plays out
        pcm.write(_fade_at(pcm.pos))
        return {"taken_back_frames": n}

    try:
        return _take(pcm, tone_s, marks, 0.4, take_back)
    except OSError:
        pcm.lib.snd_pcm_close(pcm.pcm)  # no drain: a stuck PCM would never finish it
        raise


def _run_pulse(method: str, latency_ms: float, tone_s: float, margin_ms: float,
               marks: dict[str, float]) -> dict[str, Any]:
    s = _Pulse(latency_ms)

    def take_back(info: dict[str, Any]) -> dict[str, Any]:
        if method == "pulse-flush":
            s.flush()
        elif method == "pulse-rewrite":
            old = s.pos
            return s.rewrite(int(RATE * margin_ms / 1000),
                             lambda x: np.concatenate([_fade_at(x), _silence(max(0, old - x) / RATE + 0.1)]))
        return {}

    try:
        return _take(s, tone_s, marks, 0.3, take_back)
    except OSError:
        with s._locked():
            s.lib.pa_stream_disconnect(s.s)
        raise


def _run_duplex(latency_ms: float, tone_s: float, marks: dict[str, float], host: str = "alsa") -> dict[str, Any]:
    from ..engine import AudioEngine

    def pcm24(x: np.ndarray) -> np.ndarray:
        return np.round(x * 32767).astype("<i2")

    eng = AudioEngine(input_device=False, latency=latency_ms, echo_cancellation=False, host=host)  # type: ignore[arg-type]
    eng.start()
    try:
        time.sleep(0.4)
        t24 = np.arange(int(24_000 * CLICK_MS / 1000)) / 24_000
        marks["click"] = time.perf_counter()
        eng.play(pcm24(0.5 * np.sin(2 * np.pi * 1000.0 * t24)))
        eng.end_turn()
        time.sleep(0.45)
        k = np.arange(int(24_000 * (tone_s + 1.0)))
        eng.play(pcm24(AMP * np.sin(2 * np.pi * TONE_HZ * k / 24_000)))
        time.sleep(tone_s)
        marks["interrupt"] = time.perf_counter()
        report = eng.interrupt()
        time.sleep(0.5)
        st = eng.stats()
        rate = st.output_rate_hz
        return {"period_frames": st.output_period_frames, "out_rate_hz": rate,
                "output_delay_ms": round(st.output_delay_ms, 1), "host": host,
                # the tone the engine says was heard at the interrupt (from the server's read
                # index on host "pulse"), in device frames
                "heard_at_interrupt_frames": report.heard_frames * rate // 24_000,
                "frames_pushed": st.frames_pushed, "frames_played": st.frames_played,
                "frames_flushed": st.frames_flushed, "playback_buffered_frames": st.playback_buffered_frames}
    finally:
        eng.close()


def _analyse(mon: Any, marks: dict[str, float]) -> dict[str, Any]:
    x = mon.signal()
    out: dict[str, Any] = {}
    if not len(x) or not math.isfinite(mon.t0):  # the recorder got nothing (a stalled server)
        return {"flush_to_silence_ms": None, "note": "nothing recorded"}
    loud = np.flatnonzero(np.abs(x) >= LOUD)
    # The null sink renders ahead of its clock by up to its latency and the monitor gets
    # each block at once, so the recorder's time map can place the click a few ms before
    # the write: look for it from 20 ms before (all is silent there) and keep the sign.
    i_click = mon.index(marks["click"])
    after_click = loud[loud >= i_click - int(0.02 * RATE)]
    out["roundtrip_ms"] = None if not len(after_click) else round((mon.time(int(after_click[0])) - marks["click"]) * 1e3, 1)
    if not len(loud):
        return {**out, "flush_to_silence_ms": None, "note": "nothing recorded"}
    last = int(loud[-1])
    if last >= len(x) - int(0.05 * RATE):
        return {**out, "flush_to_silence_ms": None, "note": "still sounding at the end of the recording"}
    out["flush_to_silence_ms"] = round((mon.time(last + 1) - marks["interrupt"]) * 1e3, 1)
    a = np.abs(x[max(0, last - int(0.03 * RATE)) : last + 2])
    out["step_ratio"] = round(float(np.max(np.abs(np.diff(x[max(0, last - int(0.03 * RATE)) : last + 2])))) / TONE_STEP, 2)
    # The last millisecond above -40 dBFS: a raised-cosine fade is at most 0.26 of the tone
    # there; a cut at any phase still holds a near-peak sample (the tone's period is 1 ms).
    out["fade"] = bool(np.max(np.abs(x[last - int(0.001 * RATE) : last + 1])) < AMP / 2)
    out["tone_before_end"] = bool(np.max(a[: int(0.01 * RATE)]) > AMP * 0.8)
    # In-band, no clock: the tone starts after the click and 0.4 s of silence; how much of
    # it reached the monitor, in stream frames.
    if len(after_click):
        onset = loud[loud >= int(after_click[0]) + int(0.2 * RATE)]
        if len(onset):
            out["tone_heard_frames"] = last + 1 - int(onset[0])
    return out


def _valid(row: dict[str, Any]) -> bool:
    """A clean take: the tone was sounding up to its end and no stall of the server (or a
    starved writer) stretched it (a stretched tone shifts every time on the recording)."""
    heard = row.get("tone_heard_frames")
    fts = row.get("flush_to_silence_ms")
    # ... and still sounding at the interrupt (the recorder's time map may run up to one
    # sink block early, so a take-back at once can read a few ms below zero).
    return (fts is not None and fts > -15.0 and bool(row.get("tone_before_end"))
            and heard is not None and heard <= row["tone_frames"] + RATE // 10
            and row.get("taken_back", 1) > 0)


def run_method(method: str, latency_ms: float, env: dict[str, str], *, tone_s: float = 1.0,
               margin_ms: float = 2.0, recorder_ms: float = 10.0) -> dict[str, Any]:
    """One run of ``method`` with a device buffer of ``latency_ms``, recorded by ``pacat``
    (asking the server for ``recorder_ms`` of latency: the server's ``recorder_latency_ms``)."""
    from .monitor import MonitorRecorder

    mon = MonitorRecorder(env, os.path.join(tempfile.gettempdir(), f"duplex-hf-{os.getpid()}.f32"),
                          latency_ms=recorder_ms)
    marks: dict[str, float] = {}
    try:
        time.sleep(0.3)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")
        if method in ("duplex", "duplex-pulse"):
            info = _run_duplex(latency_ms, tone_s, marks, "pulse" if method == "duplex-pulse" else "alsa")
        elif method.startswith("alsa-"):
            info = _run_alsa(method, latency_ms, tone_s, marks)
        else:
            info = _run_pulse(method, latency_ms, tone_s, margin_ms, marks)
        time.sleep(0.15)
    except OSError as e:  # the host failed this take: a row that says so, not a hang
        return {"method": method, "latency_ms": latency_ms, "flush_to_silence_ms": None, "note": str(e)}
    finally:
        mon.close()
    row = {"method": method, "latency_ms": latency_ms, "tone_frames": int(tone_s * RATE), **info,
           **_analyse(mon, marks)}
    row["valid"] = _valid(row)
    if "heard_at_interrupt_frames" in row and "tone_heard_frames" in row:
        # tone the recorder got beyond what the engine reported heard at the interrupt
        row["heard_beyond_report_frames"] = row["tone_heard_frames"] - row["heard_at_interrupt_frames"]
    if "read_index" in row and "tone_heard_frames" in row:
        # tone the listener got beyond the server's read index at the interrupt (the
        # read index itself runs ahead of the ear by the sink's latency)
        tone_start = len(_click()) + len(_silence(0.4))
        row["heard_beyond_read_index_frames"] = row["tone_heard_frames"] - (row["read_index"] - tone_start)
    return row


def run(latencies: list[float], methods: list[str], reps: int, margin_ms: float = 2.0) -> list[dict[str, Any]]:
    """Every method at every latency, interleaved, ``reps`` times, on a fresh null sink."""
    from ..testing.audio_server import pulse_null_sink

    rows = []
    with pulse_null_sink() as srv:
        for rep in range(reps):
            for lat in latencies:
                for m in methods:
                    row = run_method(m, lat, srv.env, margin_ms=margin_ms, recorder_ms=srv.recorder_latency_ms)
                    row["rep"] = rep
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> str:
    """A markdown table: median (min-max) interrupt-to-silence per method and latency, over
    the clean takes (see ``_valid``; how many of all is given)."""
    rows = [{**r, "valid": _valid(r) if "tone_frames" in r else False} for r in rows]
    lats = sorted({r["latency_ms"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    lines = ["| method | " + " | ".join(f"{lat:g} ms buffer" for lat in lats) + " | ends in a fade, no step |",
             "|---|" + "---|" * len(lats) + "---|"]
    for m in methods:
        cells = []
        clean = []
        for lat in lats:
            cell = [r for r in rows if r["method"] == m and r["latency_ms"] == lat]
            v = [r["flush_to_silence_ms"] for r in cell if r["valid"]]
            clean += [bool(r.get("fade")) and r.get("step_ratio", 99) < 1.5 for r in cell if r["valid"]]
            cells.append(("-" if not v else f"{statistics.median(v):.1f} ({min(v):.1f} to {max(v):.1f})")
                         + f" [{len(v)}/{len(cell)}]")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {sum(clean)}/{len(clean)} |")
    rts = [r["roundtrip_ms"] for r in rows if r["valid"] and r["method"].startswith("pulse")]
    if rts:
        lines.append(f"\nClick round trip through the recording chain (pulse stream, idle): median "
                     f"{statistics.median(rts):.1f} ms ({min(rts):.1f} to {max(rts):.1f}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line: runs the matrix on a fresh null sink and prints the summary."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latency", default="20,80,150", help="device buffers in ms, comma-separated")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--margin-ms", type=float, default=2.0, help="pulse-rewrite: read index + this")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    rows = run([float(v) for v in a.latency.split(",")], a.methods.split(","), a.reps, a.margin_ms)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
