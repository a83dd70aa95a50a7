"""Counters against the ear when the sound server itself stalls.

A busy machine delays a sound server's own processes as much as the engine's (without
rtkit they run at normal priority). PulseAudio's null sink then catches up; PipeWire's graph
skips the late pipewire-pulse for a cycle, the sink plays silence with the engine's queue
full, and pipewire-pulse tells its clients nothing. This benchmark forces that: it stops one
daemon of a fresh null-sink server with SIGSTOP for ``--stall-ms``, ``--stalls`` times, under a
full-duplex engine on the native host playing a tone, and compares the silences an
independent recorder heard with what ``stats()`` counted (device underruns and input
overruns, with milliseconds).

The recorder must not go through the stopped process: on PipeWire it is ``pw-record`` on
PipeWire's own protocol (:class:`~duplex.bench.monitor.PwMonitorRecorder`); on PulseAudio
only ``pacat`` exists, which the stopped daemon holds back too, so there the figures say
what was counted and what the recording kept, not a listener's truth.

    python -m duplex.bench.server_stall                                  # PipeWire, 150 and 80 ms
    python -m duplex.bench.server_stall --server pulseaudio --daemon pulseaudio
    python -m duplex.bench.server_stall --daemon pipewire --stall-ms 30 100 --latency 150
    python -m duplex.bench.server_stall --stall-ms 100 --relapse-ms 60   # misses again while catching up
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from typing import Any

import numpy as np

from ..testing.servers import SERVERS
from .devicegaps_subjects import TONE_AMP, TONE_HZ
from .monitor import MonitorRecorder, PwMonitorRecorder, envelope_db, find_gap_runs

__all__ = ["run_one", "main", "heard_silences"]

RATE = 48_000
PLAY_RATE = 24_000
#: The processes each server runs, the one stopped by default first.
DAEMONS: dict[str, tuple[str, ...]] = {"pipewire": ("pipewire-pulse", "pipewire", "wireplumber"), "pulseaudio": ("pulseaudio",)}


def heard_silences(x: np.ndarray, rate: int = RATE) -> list[tuple[float, float]]:
    """Silences inside the tone (20 dB below it, longer than 2 ms), 100 ms in from each end:
    ``(start, length)`` in ms, the start counted from the first sample of tone heard."""
    loud = np.flatnonzero(np.abs(x) > TONE_AMP / 2)
    if len(loud) == 0:
        raise RuntimeError("the recorder heard no tone")
    inside = x[loud[0] + rate // 10 : loud[-1] - rate // 10]
    runs = find_gap_runs(envelope_db(inside, rate), 20 * np.log10(TONE_AMP / np.sqrt(2)), drop_db=20, min_ms=2)
    return [(start + 100.0, length) for start, length in runs]


def _pid(srv: Any, server: str, daemon: str) -> int:
    if daemon not in DAEMONS[server]:
        raise ValueError(f"a {server} server runs {', '.join(DAEMONS[server])}, not {daemon!r}")
    return int(srv.daemon_pid(daemon)) if server == "pipewire" else int(srv.pid)


#: A silence heard within this much of a stall (on the recorder's time line against the
#: wall clock from play(), which differ by about an output latency) is that stall's.
NEAR_STALL_MS = 500
#: How long a daemon runs between a stall and its relapse.
RELAPSE_AFTER_MS = 60


#: What this benchmark reports of ``stats()``, by its own name: the losses below the ring.
COUNTERS = {"output_underruns": "output_device_underruns", "output_underrun_ms": "output_device_underrun_ms",
            "input_overruns": "input_device_overruns", "input_overrun_ms": "input_device_overrun_ms"}


def _counted(stats: Any) -> dict[str, float]:
    return {name: getattr(stats, field) for name, field in COUNTERS.items()}


def _stop(pid: int, ms: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(ms / 1000)
    finally:
        os.kill(pid, signal.SIGCONT)


def _play_and_stall(pid: int, stall_ms: float, stalls: int, latency_ms: int, gap_s: float,
                    relapse_ms: float) -> tuple[list[dict[str, float]], list[float], Any]:
    """Plays a tone on the native host and stops ``pid`` ``stalls`` times: the counters read
    before each stall and at the end, the stalls' times from play() (ms), the last stats."""
    from duplex import AudioEngine

    time.sleep(0.7)  # the recorder settles
    seconds = 2.0 + stalls * (gap_s + (stall_ms + relapse_ms + RELAPSE_AFTER_MS) / 1000) + 1.5
    phase = 2 * np.pi * TONE_HZ * np.arange(int(PLAY_RATE * (seconds + 1.0))) / PLAY_RATE
    stalled_at: list[float] = []
    snapshots: list[dict[str, float]] = []
    with AudioEngine(host="pulse", latency=latency_ms, echo_cancellation=False) as engine:
        engine.play((TONE_AMP * 32767 * np.sin(phase)).astype(np.int16), timeout=5)
        played = time.monotonic()
        time.sleep(2.0)
        for _ in range(stalls):
            snapshots.append(_counted(engine.stats()))
            stalled_at.append(round((time.monotonic() - played) * 1000))
            _stop(pid, stall_ms)
            if relapse_ms > 0:
                time.sleep(RELAPSE_AFTER_MS / 1000)
                _stop(pid, relapse_ms)
            time.sleep(gap_s)
        time.sleep(1.5)
        s = engine.stats()
        snapshots.append(_counted(s))
    return snapshots, stalled_at, s


def run_one(srv: Any, server: str, daemon: str, stall_ms: float, stalls: int, latency_ms: int,
            gap_s: float = 1.5, relapse_ms: float = 0.0) -> dict[str, Any]:
    """One run on the running server ``srv``: returns what was heard and what was counted,
    in all and stall by stall.

    With ``relapse_ms``, each stall is followed, ``RELAPSE_AFTER_MS`` after the daemon
    resumes, by a second stop of that length: a server catching up on a busy machine
    missing again, within one window of the position clock.

    ``per_stall`` pairs, for each stall, the silences heard near it with what ``stats()``
    counted from that stall to the next (the counters are read just before each stall and
    at the end, ``gap_s`` apart, longer than the position clock takes to confirm a loss).
    ``heard_elsewhere`` are silences near no stall: the server losing audio on its own.
    """
    pid = _pid(srv, server, daemon)
    fd, path = tempfile.mkstemp(prefix="duplex-stall-", suffix=".wav")
    os.close(fd)
    rec: Any = (PwMonitorRecorder(srv.env, path) if server == "pipewire"
                else MonitorRecorder(srv.env, path, latency_ms=srv.recorder_latency_ms))
    try:
        snapshots, stalled_at, s = _play_and_stall(pid, stall_ms, stalls, latency_ms, gap_s, relapse_ms)
    finally:
        rec.close()  # bounded (it kills a recorder that does not stop), and removes the file
    heard = heard_silences(rec.signal())
    per_stall = []
    for k, at in enumerate(stalled_at):
        near = [(a, n) for a, n in heard if abs(a - at) <= NEAR_STALL_MS]
        before, after = snapshots[k], snapshots[k + 1]
        per_stall.append({"at_ms": at, "heard": [[round(a), round(n, 1)] for a, n in near],
                          "heard_ms": round(sum(n for _, n in near), 1),
                          **{name: round(after[name] - before[name], 1) for name in COUNTERS}})
    elsewhere = [[round(a), round(n, 1)] for a, n in heard if all(abs(a - at) > NEAR_STALL_MS for at in stalled_at)]
    return {"server": server, "daemon": daemon, "stall_ms": stall_ms, "relapse_ms": relapse_ms, "stalls": stalls,
            "latency_ms": latency_ms, "heard": len(heard), "heard_ms": round(sum(length for _, length in heard), 1),
            **{name: round(value, 1) for name, value in snapshots[-1].items()},
            "ring_underruns": s.underruns, "output_backend_xruns": s.output_backend_xruns,
            "output_buffer_ms": s.output_buffer_ms, "per_stall": per_stall, "heard_elsewhere": elsewhere}


def main(argv: list[str] | None = None) -> int:
    """``python -m duplex.bench.server_stall``: prints one line per run."""
    p = argparse.ArgumentParser(prog="python -m duplex.bench.server_stall", description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=tuple(SERVERS), default="pipewire")
    p.add_argument("--daemon", default=None, choices=sorted({d for ds in DAEMONS.values() for d in ds}),
                   help="the process to stop (default: pipewire-pulse on PipeWire, pulseaudio on PulseAudio)")
    p.add_argument("--stall-ms", type=float, nargs="+", default=[30.0, 100.0])
    p.add_argument("--stalls", type=int, default=4, help="stalls per run (default 4; 0 for a control run)")
    p.add_argument("--latency", type=int, nargs="+", default=[150, 80], help="engine buffers, ms")
    p.add_argument("--relapse-ms", type=float, default=0.0,
                   help=f"after each stall, let the daemon run {RELAPSE_AFTER_MS} ms, then stop it again for this many ms "
                        "(default 0: no relapse)")
    a = p.parse_args(argv)
    daemon = a.daemon or DAEMONS[a.server][0]
    if daemon not in DAEMONS[a.server]:
        p.error(f"--daemon {daemon}: a {a.server} server runs {', '.join(DAEMONS[a.server])}")
    if a.stalls < 0 or a.relapse_ms < 0 or any(ms < 0 for ms in a.stall_ms) or any(ms <= 0 for ms in a.latency):
        p.error("--stalls, --stall-ms and --relapse-ms must be 0 or more, --latency more than 0")
    kind = SERVERS[a.server]
    if not kind.installed():
        print(f"skipped: {kind.missing}")
        return 0
    print("| stall | buffer | heard silences (ms) | of them near no stall | output underruns (ms) | input overruns (ms) | ring underruns |")
    print("|---|---|---|---|---|---|---|")
    for latency in a.latency:
        for stall in a.stall_ms:
            with kind.start() as srv:  # its client environment is in os.environ inside
                r = run_one(srv, a.server, daemon, stall, a.stalls, latency, relapse_ms=a.relapse_ms)
            elsewhere = r["heard_elsewhere"]
            what = f"{stall:g} ms" + (f" + {a.relapse_ms:g} ms" if a.relapse_ms else "")
            print(f"| {a.stalls} x {what} of {daemon} | {latency} ms | {r['heard']} ({r['heard_ms']}) | "
                  f"{len(elsewhere)} ({round(sum(n for _, n in elsewhere), 1)}) | "
                  f"{r['output_underruns']} ({r['output_underrun_ms']}) | {r['input_overruns']} ({r['input_overrun_ms']}) | "
                  f"{r['ring_underruns']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
