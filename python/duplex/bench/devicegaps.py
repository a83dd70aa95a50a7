"""Real sound server, measured from outside: gaps in full duplex, barge-in, capture latency.

On a PulseAudio null sink (:mod:`duplex.testing.audio_server`), an independent recorder (a
separate ``pacat --record`` of the sink's monitor, :class:`~duplex.bench.monitor.MonitorRecorder`)
hears what each implementation played. Every implementation runs in its own child process
(:mod:`duplex.bench.devicegaps_subjects`) in full duplex: its microphone open and read by
Python, as in a conversation.

* **Gaps** (per load and implementation, ``--seconds`` each): a continuous 1 kHz tone fed
  like the service (40 ms chunks, 1.25x real time after a 200 ms head start); a gap is a run
  of >= 5 ms of 1 ms RMS windows more than 20 dB below the tone, between its onset and its
  end at the monitor; a break is any sample where the tone stops being a sine (a cut, an
  inserted silence or a skipped block, however short: gaps included). Loads: ``idle``;
  ``busy`` (two other processes spinning, so both cores are busy); ``gil`` (the subject's process holds the GIL 50 ms of every 100 ms with a C
  call); ``gil+busy``. Next to what was heard: the implementation's own counters.
* **Barge-in** (idle): ``interrupt()`` during a long answer (3 s already queued) to the last
  sample >= -40 dBFS at the monitor, ``--interrupts`` times, and the same minus the round trip
  of a click through the implementation (play call to onset at the monitor).
* **Capture latency** (idle): 10 ms clicks (0.4-0.44 s apart, so they meet the capture
  path's frames at different phases) played into the sink by another ``pacat``; from
  the click's onset at the monitor (recorder) to the arrival in Python of the 16 kHz chunk
  that holds it (duplex ``read()``, a naive sounddevice ``InputStream``).

    python -m duplex.bench.devicegaps                 # the full run, about 10 minutes
    python -m duplex.bench.devicegaps --quick         # smoke: 2 s cells, about 3.5 minutes
    python -m duplex.bench.devicegaps --server pipewire   # the same on PipeWire (pipewire-pulse)
    duplex bench --devices [--quick]                  # the same from the CLI
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..testing.servers import SERVERS
from .devicegaps_report import markdown, plot
from .devicegaps_subjects import CLICK_AMP, CLICK_MS, SUBJECTS, TONE_AMP, TONE_HZ
from .monitor import MonitorRecorder, envelope_db, find_discontinuities, find_gaps

__all__ = ["run", "main", "analyse_gaps", "analyse_bargein", "analyse_capture", "LOADS", "GAP_SUBJECTS"]

LOADS = ("idle", "busy", "gil", "gil+busy")
GAP_SUBJECTS = ("duplex-20", "duplex-80", "duplex-150", "pulse-80", "pulse-150", "sd-callback", "sd-callback-150",
                "cookbook")
BARGEIN_SUBJECTS = GAP_SUBJECTS
CAPTURE_SUBJECTS = ("duplex-20", "duplex-80", "duplex-150", "duplex-80-noaec", "pulse-80", "pulse-150", "pulse-150-noaec",
                    "sd-input")
NOMINAL_DB = 20 * np.log10(TONE_AMP / np.sqrt(2))  # the tone's RMS level at the monitor, -13.5 dBFS
GAP_DROP_DB = 20.0
GAP_MIN_MS = 5.0
AUDIBLE = 10 ** (-40 / 20)  # -40 dBFS
REC_RATE = 48_000


# -- analysis (pure functions of the recorder's signal and the subject's marks) ----------


def analyse_gaps(x: np.ndarray, rate: int, t_of: Any, i_of: Any, marks: dict[str, Any]) -> dict[str, Any]:
    """Gaps heard in the tone: ``x`` the recorder's signal, ``t_of(i)``/``i_of(t)`` its clock."""
    env = envelope_db(x, rate)
    w = rate // 1000
    start = i_of(marks["tone"]) // w
    loud = np.flatnonzero(env[start:] > NOMINAL_DB - GAP_DROP_DB)
    if len(loud) == 0:
        return {"heard": False, "gaps": None, "gaps_per_min": None}
    a, b = start + int(loud[0]) + 20, start + int(loud[-1]) - 20  # onset+20 ms .. end-20 ms
    seg = env[a:b]
    gaps = find_gaps(seg, NOMINAL_DB, drop_db=GAP_DROP_DB, min_ms=GAP_MIN_MS) if len(seg) else []
    breaks = find_discontinuities(x[a * w : b * w], rate, TONE_HZ, TONE_AMP)
    minutes = max(len(seg), 1) / 1000 / 60
    return {"heard": True, "onset_ms": round((t_of(a * w) - marks["tone"]) * 1e3 - 20, 1),
            "window_s": round(len(seg) / 1000, 2), "gaps": len(gaps),
            "gaps_per_min": round(len(gaps) / minutes, 1), "gap_ms": round(sum(gaps), 1),
            "gap_max_ms": round(max(gaps, default=0.0), 1),
            "breaks": len(breaks), "breaks_per_min": round(len(breaks) / minutes, 1)}


def _onset(x: np.ndarray, i0: int, i1: int, level: float = AUDIBLE) -> int | None:
    hits = np.flatnonzero(np.abs(x[i0:i1]) >= level)
    return None if len(hits) == 0 else i0 + int(hits[0])


def analyse_bargein(x: np.ndarray, rate: int, i_of: Any, marks: dict[str, Any]) -> dict[str, Any]:
    """Interrupt-to-silence at the monitor for every interrupt, and the click's round trip."""
    # from 20 ms before the mark: an onset before it would show a clock mapping error
    c = _onset(x, max(0, i_of(marks["click"] - 0.02)), i_of(marks["click"] + 0.5))
    rt_ms = None if c is None else (c - i_of(marks["click"])) / rate * 1e3
    raw: list[float] = []
    censored = silent_before = 0
    ends = marks["tones"][1:] + [marks["interrupts"][-1] + 0.7]
    for t_int, t_end in zip(marks["interrupts"], ends):
        # up to 50 ms before the next answer's play call: with a clock mapping a little early
        # (see MonitorRecorder) and an empty device buffer, that answer can map before its call
        i, j = i_of(t_int), min(i_of(t_end - 0.05), len(x))
        if not np.any(np.abs(x[max(0, i - rate // 100) : i]) >= AUDIBLE):
            silent_before += 1  # the tone was not sounding when interrupt() came: no figure
            continue
        loud = np.flatnonzero(np.abs(x[i:j]) >= AUDIBLE)
        if len(loud) and i + int(loud[-1]) >= j - rate // 50:
            censored += 1  # still sounding when the next answer began
            continue
        raw.append((int(loud[-1]) + 1 if len(loud) else 0) / rate * 1e3)
    out: dict[str, Any] = {"roundtrip_ms": None if rt_ms is None else round(rt_ms, 1), "n": len(raw),
                           "censored": censored, "silent_at_interrupt": silent_before,
                           "raw_ms": [round(v, 1) for v in raw]}
    out.update(_stats("raw", raw))
    if rt_ms is not None:
        out.update(_stats("minus_rt", [v - rt_ms for v in raw]))
    return out


def analyse_capture(x: np.ndarray, t_of: Any, cap: np.ndarray, chunk_times: list[float],
                    chunk_lens: list[int], cap_rate: int = 16_000, rec_rate: int = REC_RATE) -> dict[str, Any]:
    """Click onset at the monitor (recorder) to the arrival in Python of the chunk holding it."""
    level = CLICK_AMP / 4
    def onsets(sig: np.ndarray, rate: int) -> list[int]:
        hot = np.flatnonzero(np.abs(sig) >= level)
        if len(hot) == 0:
            return []
        keep = np.concatenate([[True], np.diff(hot) > rate // 10])  # a new click after 100 ms of quiet
        return [int(v) for v in hot[keep]]

    mon = onsets(x, rec_rate)
    got = onsets(cap.astype(np.float64) / 32768, cap_rate)
    ends = np.cumsum(chunk_lens)
    mon_t = [t_of(i) for i in mon]
    lat: list[float] = []
    for s in got:
        k = int(np.searchsorted(ends, s, side="right"))  # the chunk that holds sample s
        if k >= len(chunk_times):
            continue
        t_arr = chunk_times[k]
        # pair with the latest monitor onset before the arrival (clicks are >= 0.4 s apart)
        before = [t for t in mon_t if t <= t_arr and t_arr - t < 0.3]
        if before:
            lat.append((t_arr - before[-1]) * 1e3)
    out: dict[str, Any] = {"clicks_at_monitor": len(mon), "clicks_captured": len(got), "n": len(lat),
                           "latency_ms": [round(v, 1) for v in lat]}
    out.update(_stats("latency", lat))
    return out


def _stats(prefix: str, v: list[float]) -> dict[str, Any]:
    if not v:
        return {f"{prefix}_median_ms": None, f"{prefix}_p95_ms": None}
    return {f"{prefix}_median_ms": round(float(np.median(v)), 1),
            f"{prefix}_p95_ms": round(float(np.percentile(v, 95)), 1)}


# -- running cells ------------------------------------------------------------------------


def _click_train(path: str, n: int) -> None:
    """``n`` 10 ms 1 kHz clicks 0.4-0.44 s apart at 48 kHz, after 0.2 s of silence.

    The spacing steps by 4.1 ms a click (cycling over 40 ms) so that the clicks land at
    different points of the capture path's 10 / 20 ms frames and chunks: clicks exactly
    0.4 s apart all met it at the same phase, so each run measured one phase (p95 = median)
    and runs differed by up to 18 ms."""
    t = np.arange(int(REC_RATE * CLICK_MS / 1000)) / REC_RATE
    click = CLICK_AMP * np.sin(2 * np.pi * 1000 * t)
    parts = [np.zeros(REC_RATE // 5)]
    for k in range(n):
        spacing = 0.4 + (k * 0.0041) % 0.04
        parts += [click, np.zeros(int(REC_RATE * spacing) - len(click))]
    np.concatenate(parts).astype("<f4").tofile(path)


def _spinners(n: int) -> list[subprocess.Popen[bytes]]:
    """Other processes keeping the cores busy (what a user's browser or build does)."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"], stdin=subprocess.DEVNULL)
            for _ in range(n)]


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(3)


def run_cell(task: str, subject: str, env: dict[str, str], tmp: str, load: str = "idle",
             seconds: float = 15.0, interrupts: int = 8, clicks: int = 10,
             recorder_ms: float = 10.0) -> dict[str, Any]:
    """One child process running ``subject`` on ``task`` while the recorder (asking the
    server for ``recorder_ms`` of latency) listens."""
    spec: dict[str, Any] = {"task": task, "subject": subject, "seconds": seconds, "gil": "gil" in load,
                            "interrupts": interrupts, "seed": 7}
    if task == "capture":
        spec["click_file"] = os.path.join(tmp, "clicks.f32")
        spec["capture_file"] = os.path.join(tmp, "capture.npy")
        _click_train(spec["click_file"], clicks)
    out_path = os.path.join(tmp, "child.json")
    row: dict[str, Any] = {"task": task, "subject": subject, "load": load, "loadavg_start": os.getloadavg()[0]}
    mon = MonitorRecorder(env, os.path.join(tmp, "monitor.f32"), REC_RATE, recorder_ms)
    spin = _spinners(2) if "busy" in load else []
    try:
        time.sleep(0.2)
        limit = seconds + 30 if task == "gaps" else 90
        subprocess.run([sys.executable, "-m", "duplex.bench.devicegaps_subjects", json.dumps(spec), out_path],
                       env={**os.environ, **env}, stdin=subprocess.DEVNULL, timeout=limit, check=False)
        time.sleep(0.2)
    finally:
        _stop_all(spin)
        mon.close()
    row["loadavg_end"] = os.getloadavg()[0]
    row["clock_spread_ms"] = mon.clock_spread_ms()
    try:
        child = json.loads(Path(out_path).read_text())
        os.unlink(out_path)
    except (OSError, ValueError) as e:
        return {**row, "error": f"child wrote no result: {e}"}
    if "error" in child:
        return {**row, "error": child["error"]}
    row["counters"] = child["counters"]
    x = mon.signal()
    if task == "gaps":
        row.update(analyse_gaps(x, mon.rate, mon.time, mon.index, child["marks"]))
        row["seconds"] = seconds
        row["load_summary"] = child.get("load_summary")
    elif task == "bargein":
        row.update(analyse_bargein(x, mon.rate, mon.index, child["marks"]))
    else:
        cap = np.load(spec["capture_file"])
        row.update(analyse_capture(x, mon.time, cap, child["chunk_times"], child["chunk_lens"]))
    return row


def run(quick: bool = False, seconds: float | None = None, repeat: int = 1,
        subjects: tuple[str, ...] | None = None, loads: tuple[str, ...] | None = None,
        progress: bool = True, tasks: tuple[str, ...] = ("gaps", "bargein", "capture"),
        server: str = "pulseaudio") -> dict[str, Any]:
    """Runs the gap, barge-in and capture cells on a fresh null sink of ``server`` (a key of
    :data:`SERVERS`); returns rows and meta."""
    kind = SERVERS[server]
    if not kind.installed():
        return {"rows": [], "skipped": kind.missing}
    seconds = seconds or (2.0 if quick else 15.0)
    loads = loads or LOADS
    gap_subjects = tuple(s for s in (subjects or GAP_SUBJECTS) if s in GAP_SUBJECTS)
    cap_subjects = tuple(s for s in (subjects or CAPTURE_SUBJECTS) if s in CAPTURE_SUBJECTS)
    if subjects and "sd-input" not in subjects and cap_subjects:
        cap_subjects += ("sd-input",)  # the capture baseline always runs
    interrupts, clicks = (2, 3) if quick else (8, 10)
    plan: list[tuple[str, str, str]] = []
    for r in range(repeat):
        for k, load in enumerate(loads if "gaps" in tasks else ()):
            order = gap_subjects if (k + r) % 2 == 0 else tuple(reversed(gap_subjects))
            plan += [("gaps", s, load) for s in order]
        plan += [("bargein", s, "idle") for s in gap_subjects if "bargein" in tasks]
        plan += [("capture", s, "idle") for s in cap_subjects if "capture" in tasks]
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="duplex-devicegaps-") as tmp, kind.start() as srv:
        meta: dict[str, Any] = {"server": kind.description, "startup_s": round(srv.startup_s, 2),
                                "sink_latency_us": srv.sink_latency_us(), "seconds": seconds, "repeat": repeat,
                                "interrupts": interrupts, "clicks": clicks, "quick": quick,
                                "loadavg_start": os.getloadavg(), "cpus": os.cpu_count(),
                                "recorder_latency_ms": srv.recorder_latency_ms}
        for n, (task, subject, load) in enumerate(plan, 1):
            try:
                row = run_cell(task, subject, srv.env, tmp, load, seconds, interrupts, clicks,
                               srv.recorder_latency_ms)
            except Exception as e:  # noqa: BLE001 - report, keep going
                row = {"task": task, "subject": subject, "load": load, "error": f"{type(e).__name__}: {e}"}
            rows.append(row)
            if progress:
                print(f"[{n}/{len(plan)}] {_line(row)}  ({time.monotonic() - began:.0f} s)", flush=True)
        meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = round(time.monotonic() - began, 1)
    return {"rows": rows, "meta": meta}


def _line(r: dict[str, Any]) -> str:
    head = f"{r['task']:<8} {r['subject']:<16} {r['load']:<9}"
    if "error" in r:
        return head + f" ERROR {r['error']}"
    if r["task"] == "gaps":
        return head + f" heard {r.get('gaps')} gaps ({r.get('gaps_per_min')}/min, {r.get('gap_ms')} ms), " \
                      f"{r.get('breaks')} breaks  " \
                      f"own: {_own(r)}  load {r['loadavg_start']:.1f}"
    if r["task"] == "bargein":
        return head + f" raw median {r.get('raw_median_ms')} p95 {r.get('raw_p95_ms')} ms, rt {r.get('roundtrip_ms')} ms"
    return head + f" capture median {r.get('latency_median_ms')} p95 {r.get('latency_p95_ms')} ms (n={r.get('n')})"


def _own(r: dict[str, Any]) -> str:
    """What the implementation's own counters said about its output."""
    c = r.get("counters") or {}
    if "underruns" in c:
        parts = [f"underruns {c['underruns']}"]
        for k in ("output_device_underruns", "device_underruns", "output_xruns"):
            if k in c:
                parts.append(f"{k} {c[k]}")
        parts.append(f"device_errors {c.get('device_errors')}")
        return ", ".join(parts)
    return f"output_underflow {c.get('output_underflow')}"


def main(argv: list[str] | None = None) -> int:
    """``python -m duplex.bench.devicegaps``: runs, prints the table, writes JSON and a PNG."""
    p = argparse.ArgumentParser(prog="python -m duplex.bench.devicegaps", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_cli(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The options (``prefix`` avoids clashes inside ``duplex bench``)."""
    if not prefix:
        p.add_argument("--quick", action="store_true", help="smoke test: 2 s cells, 2 interrupts, 3 clicks")
        p.add_argument("--seconds", type=float, help="seconds of tone per gap cell (default 15, quick 2)")
        p.add_argument("--out", help="folder for devicegaps.json, devicegaps.md and devicegaps.png")
    p.add_argument(f"--{prefix}server", choices=tuple(SERVERS), default="pulseaudio",
                   help="the sound server to start (default pulseaudio)")
    p.add_argument(f"--{prefix}repeat", type=int, default=1, help="repetitions of the whole plan (default 1)")
    p.add_argument(f"--{prefix}subjects", nargs="+", metavar="NAME", help=f"implementations (of {' '.join(SUBJECTS)})")
    p.add_argument(f"--{prefix}loads", nargs="+", metavar="NAME", help=f"loads (of {' '.join(LOADS)})")
    p.add_argument(f"--{prefix}tasks", nargs="+", metavar="NAME", choices=("gaps", "bargein", "capture"),
                   help="what to measure (default: gaps bargein capture)")


def run_cli(a: argparse.Namespace, prefix: str = "") -> int:
    """Runs with parsed options; writes the report files; returns an exit code."""
    from datetime import datetime

    get = lambda k: getattr(a, prefix + k, None)  # noqa: E731
    res = run(quick=bool(a.quick), seconds=a.seconds, repeat=get("repeat") or 1,
              subjects=tuple(get("subjects") or ()) or None, loads=tuple(get("loads") or ()) or None,
              tasks=tuple(get("tasks") or ("gaps", "bargein", "capture")), server=get("server") or "pulseaudio")
    if "skipped" in res:
        print(f"skipped: {res['skipped']}")
        return 0
    out = Path(a.out) if a.out else Path("duplex-bench") / datetime.now().strftime("devices-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "devicegaps.json").write_text(json.dumps(res, indent=1, default=str))
    md = markdown(res)
    (out / "devicegaps.md").write_text(md)
    png = plot(res, out / "devicegaps.png")
    print(md)
    print(f"wrote {out / 'devicegaps.json'}, {out / 'devicegaps.md'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
