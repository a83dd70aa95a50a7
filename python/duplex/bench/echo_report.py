"""Echo cancellation figures: both AEC3 backends and no cancellation, side by side in one run.

Each case drives the real engine (bindings, capture reader, reference tap, canceller) on a
:class:`~duplex.VirtualDevice` running as fast as the reader takes the audio. The far end
(espeak-ng speech, or a synthetic voice without it) is played through :meth:`play`; the
microphone is an input array built from what the device rendered (``recording()`` of a
first, echo-free pass), so the echo path can be anything numpy can compute:

* ``simple``: mic = 0.5 x speaker(t - 40 ms) + near end;
* ``room``: a soft-clipped speaker, 40 ms bulk delay, direct path -6 dB, an RT60 250 ms
  tail and white noise at -65 dBFS, + near end;
* ``drift``: the simple path heard through a microphone clock 200 ppm fast, so the echo
  slides against the reference (3.2 ms over 16 s) as it does between two devices.

A second voice at the echo's level talks from ``near_from`` to ``near_to`` (double talk).
Every run's rendering is checked against the first pass, so the echo path is what it claims.

Figures: echo reduction (ERLE = echo energy in the mic over the energy duplex sends) over
far-end-only audio after 2 s, in 0.5 s windows over time, the time it takes to stay above
30 dB, the near end's level and correlation during double talk, the added capture latency
(the near end's delay in the chunks, against no cancellation), and the canceller's cost
per 10 ms frame (``stats().echo_cost_mean_us``) as a share of one core.

``python -m duplex.bench.echo_report [--quick] [--out DIR]``, or ``duplex bench --echo``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EchoConfig", "BACKENDS", "run", "markdown", "plot", "main"]

#: What runs side by side: no cancellation, then the two AEC3 ports.
BACKENDS = ("none", "sonora", "aec3")
DEVICE_HZ = 48_000
CHUNK_HZ = 16_000
PLAY_HZ = 24_000
ECHO_DELAY_S = 0.040
#: The goals of issue 8.
GOAL_SIMPLE_DB, GOAL_ROOM_DB, GOAL_NEAR_DB, GOAL_CORE_PCT = 40.0, 30.0, 3.0, 2.0
WINDOW_S = 0.5
CONVERGED_DB = 30.0

FAR_TEXT = [
    "The weather today is sunny with a light breeze from the west.",
    "Tomorrow brings clouds in the morning and some rain in the afternoon.",
    "Temperatures stay mild, around eighteen degrees, through the weekend.",
    "Next week looks warmer, with long dry spells and clear evenings.",
]
NEAR_TEXT = "Stop, wait a moment please, I have another question for you about the trip."


@dataclass(frozen=True)
class EchoConfig:
    """Lengths of the signals (seconds) and the drift case's clock error."""

    seconds: float = 16.0
    near_from: float = 10.0
    near_to: float = 14.0
    drift_ppm: float = 200.0
    quick: bool = False

    @classmethod
    def make_quick(cls) -> EchoConfig:
        """A few seconds per case: enough to check that everything runs, not to converge fully."""
        return cls(seconds=6.0, near_from=4.0, near_to=5.5, quick=True)


# -- signals -------------------------------------------------------------------------------


def _espeak(text: str, voice: str) -> tuple[np.ndarray, int] | None:
    exe = shutil.which("espeak-ng")
    if not exe:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        done = subprocess.run([exe, "-v", voice, "-s", "165", "-w", str(wav), text],
                              capture_output=True, timeout=30, check=False)
        if done.returncode != 0 or not wav.exists():
            return None
        import wave

        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    return data, rate


def _voice(texts: list[str], voice: str, seed: int, seconds: float, rate: int) -> tuple[np.ndarray, str]:
    """Speech at `rate`, phrases back to back (0.15 s apart), `seconds` long, at -24 dBFS."""
    from duplex import _engine
    from duplex.demo import synthetic_voice

    parts: list[np.ndarray] = []
    source = "espeak-ng"
    for k, text in enumerate(texts):
        got = _espeak(text, voice)
        if got is None:
            source = "synthetic voice"
            parts.append(np.asarray(_engine.resample(synthetic_voice(2.0, seed=seed + k), 22_050, rate)))
        else:
            parts.append(np.asarray(_engine.resample(got[0], got[1], rate)))
        parts.append(np.zeros(int(0.15 * rate), np.float32))
    one = np.concatenate(parts)
    x = np.tile(one, int(np.ceil(seconds * rate / one.size)))[: int(seconds * rate)].astype(np.float64)
    x *= 10 ** (-24 / 20) / max(float(np.sqrt(np.mean(x ** 2))), 1e-9)
    return x.astype(np.float32), source


def room_ir(rate: int = DEVICE_HZ) -> np.ndarray:
    """Direct path 0.5, then an exponentially decaying noise tail (RT60 250 ms), 0.3 s long."""
    rng = np.random.default_rng(0x1234)
    n = int(0.3 * rate)
    ir = np.zeros(n)
    ir[0] = 0.5
    k = np.arange(int(0.002 * rate), n)
    ir[k] += 0.12 * np.exp(-6.9 * k / (0.25 * rate)) * rng.uniform(-1, 1, k.size)
    return ir


def _fractional(x: np.ndarray, positions: np.ndarray, half: int = 16) -> np.ndarray:
    """`x` at fractional sample `positions` (Blackman-windowed sinc, 32 taps): the drift case's
    slowly sliding read without the error of linear interpolation."""
    base = np.floor(positions).astype(np.int64)
    frac = positions - base
    out = np.zeros(positions.size)
    padded = np.concatenate([np.zeros(half), x.astype(np.float64), np.zeros(half + 1)])
    for n in range(-half + 1, half + 1):
        d = frac - n
        u = (d + half) / (2 * half)
        w = 0.42 - 0.5 * np.cos(2 * np.pi * u) + 0.08 * np.cos(4 * np.pi * u)
        idx = np.clip(base + n + half, 0, padded.size - 1)
        out += padded[idx] * np.sinc(d) * w
    return out


def echo_of(played: np.ndarray, path: str, drift_ppm: float = 0.0) -> np.ndarray:
    """The echo the microphone hears (device rate) of what the speaker `played`."""
    delay = int(round(ECHO_DELAY_S * DEVICE_HZ))
    x = np.concatenate([np.zeros(delay), played.astype(np.float64)])[: played.size]
    if path == "simple":
        return (0.5 * x).astype(np.float32)
    if path == "drift":
        pos = np.arange(played.size) * (1.0 + drift_ppm * 1e-6)
        pos = pos - delay * (1.0 + drift_ppm * 1e-6)
        return (0.5 * _fractional(played, np.maximum(pos, -100.0))).astype(np.float32)
    if path == "room":
        heard = np.tanh(2.0 * x) * 0.5
        ir = room_ir()
        size = 1 << int(np.ceil(np.log2(heard.size + ir.size)))
        wet = np.fft.irfft(np.fft.rfft(heard, size) * np.fft.rfft(ir, size), size)[: heard.size]
        noise = np.random.default_rng(42).uniform(-1, 1, heard.size) * 10 ** (-65 / 20) * np.sqrt(3)
        return (wet + noise).astype(np.float32)
    raise ValueError(f"unknown echo path {path!r}")


# -- one engine run ------------------------------------------------------------------------


@dataclass
class _Take:
    out: np.ndarray  # what duplex sends, 16 kHz float
    played: np.ndarray  # what the device rendered, device rate
    stats: Any
    cpu_s: float  # process CPU time of the whole take (every thread)


def _take(backend: str, mic: np.ndarray, far: np.ndarray, seconds: float) -> _Take:
    import duplex

    device = duplex.VirtualDevice(sample_rate=DEVICE_HZ, input=mic, input_rate=DEVICE_HZ, speed=0,
                                  output="memory")
    engine = duplex.AudioEngine(
        backend=device, prebuffer_ms=60, chunk_ms=100, capture_buffer_ms=300,
        playback_buffer_ms=int(seconds * 1000) + 2_000,
        echo_cancellation=backend != "none", echo_backend="sonora" if backend == "none" else backend)
    want = int(seconds * CHUNK_HZ)
    got: list[np.ndarray] = []
    n = 0
    cpu0 = time.process_time()
    with engine:
        # As fast as possible, the device first fills the capture ring (300 ms) and waits for
        # the reader; queueing the answer only then makes every take render it from the same
        # device frame, so the echo computed from the first take's rendering is exact.
        time.sleep(0.05)
        engine.play(far)
        engine.end_turn()
        while n < want:
            chunk = engine.read_array(timeout=10)
            if chunk is None:
                break
            got.append(chunk)
            n += chunk.size
        played = engine.recording()[:, 0].copy()
        stats = engine.stats()
    cpu = time.process_time() - cpu0
    out = np.concatenate(got).astype(np.float32) / 32768 if got else np.zeros(0, np.float32)
    return _Take(out=out, played=played, stats=stats, cpu_s=cpu)


def _start(x: np.ndarray) -> int:
    nz = np.flatnonzero(np.abs(x) > 1e-6)
    return int(nz[0]) if nz.size else -1


def _to16(x: np.ndarray) -> np.ndarray:
    from duplex import _engine

    return np.asarray(_engine.resample(np.asarray(x, np.float32), DEVICE_HZ, CHUNK_HZ), np.float64)


def _db(ratio: float) -> float:
    return float(10 * np.log10(max(ratio, 1e-20)))


def _energy(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def _best_lag(out: np.ndarray, ref: np.ndarray, a: int, b: int, max_lag: int = 640) -> tuple[float, int]:
    """Correlation of `out` with `ref[a:b]` at the best delay (0..max_lag samples)."""
    r = ref[a:b]
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        o = out[a + lag : b + lag]
        if o.size < r.size:
            break
        c = float(np.dot(o, r)) / max(float(np.sqrt(np.dot(o, o) * np.dot(r, r))), 1e-20)
        if c > best[0]:
            best = (c, lag)
    return best


def _windows(echo16: np.ndarray, out: np.ndarray, seconds: float, skip: tuple[float, float] | None) -> list[float | None]:
    """Echo reduction (dB) in consecutive 0.5 s windows; None where the near end talks or the
    far end is (almost) silent."""
    w = int(WINDOW_S * CHUNK_HZ)
    res: list[float | None] = []
    for k in range(int(seconds / WINDOW_S)):
        a, b = k * w, (k + 1) * w
        t0, t1 = k * WINDOW_S, (k + 1) * WINDOW_S
        if b > out.size or b > echo16.size or (skip and t1 > skip[0] and t0 < skip[1] + 0.3):
            res.append(None)
            continue
        e = _energy(echo16[a:b])
        res.append(None if e < 1e-7 else round(_db(e / max(_energy(out[a:b]), 1e-20)), 1))
    return res


def _reduction(echo16: np.ndarray, out: np.ndarray, t0: float, t1: float) -> float:
    a, b = int(t0 * CHUNK_HZ), int(min(t1 * CHUNK_HZ, out.size, echo16.size))
    return round(_db(_energy(echo16[a:b]) / max(_energy(out[a:b]), 1e-20)), 1)


def _convergence(windows: list[float | None]) -> float | None:
    """Start of the first window from which every measured window is >= 30 dB."""
    for k in range(len(windows)):
        rest = [w for w in windows[k:] if w is not None]
        if windows[k] is not None and rest and all(w >= CONVERGED_DB for w in rest):
            return k * WINDOW_S
    return None


def run(quick: bool = False, config: EchoConfig | None = None, progress: bool = False) -> dict[str, Any]:
    """Runs every case for every backend; returns ``rows`` (one per backend), ``config``,
    ``markdown`` and the total ``seconds``."""
    cfg = config or (EchoConfig.make_quick() if quick else EchoConfig())
    started = time.perf_counter()
    far, far_source = _voice(FAR_TEXT, "en-us", 0, cfg.seconds, PLAY_HZ)
    far_pcm = np.clip(far * 32767, -32768, 32767).astype(np.int16)
    talk, _ = _voice([NEAR_TEXT], "en+f3", 7, cfg.near_to - cfg.near_from, DEVICE_HZ)
    total = int((cfg.seconds + 1.0) * DEVICE_HZ)
    near = np.zeros(total, np.float32)
    i0 = int(cfg.near_from * DEVICE_HZ)
    near[i0 : i0 + talk.size] = talk

    # The echo-free first pass: what the speaker renders, and where it starts.
    first = _take("none", np.zeros(total, np.float32), far_pcm, cfg.seconds)
    played = np.zeros(total, np.float32)
    played[: min(total, first.played.size)] = first.played[:total]
    start = _start(played)
    # The echo is computed once per path at the level the near end is matched to (0 dB
    # signal-to-echo on the simple path).
    echoes = {path: echo_of(played, path, cfg.drift_ppm) for path in ("simple", "room", "drift")}
    # The near end talks at each path's echo level (0 dB signal-to-echo).
    nears = {path: near * float(np.sqrt(_energy(e[start:]) / max(_energy(talk), 1e-20)))
             for path, e in echoes.items()}
    cases = {"simple": True, "room": True, "drift": False}  # with double talk?
    skip = (cfg.near_from, cfg.near_to)
    rows: list[dict[str, Any]] = []
    lags: dict[str, int] = {}
    cpu_none: dict[str, float] = {}
    for backend in BACKENDS:
        row: dict[str, Any] = {"backend": backend}
        for path, double_talk in cases.items():
            mic = echoes[path] + (nears[path] if double_talk else 0.0)
            for _attempt in range(3):  # a take whose rendering moved (a stalled start) is retried
                take = _take(backend, mic.astype(np.float32), far_pcm, cfg.seconds)
                shift = _start(take.played) - start
                if shift == 0:
                    break
            echo16 = _to16(echoes[path])
            out = take.out
            n = min(out.size, echo16.size)
            windows = _windows(echo16[:n], out[:n], cfg.seconds, skip if double_talk else None)
            row[f"{path}_windows_db"] = windows
            row[f"{path}_render_shift_frames"] = shift
            end = cfg.near_from - 0.2 if double_talk else cfg.seconds - 0.2
            row[f"{path}_db"] = _reduction(echo16, out, min(2.0, end / 2), end)
            if path == "simple":
                row["convergence_s"] = _convergence(windows)
                st = take.stats
                row["cost_mean_us"] = round(st.echo_cost_mean_us, 1)
                row["cost_p99_us"] = round(st.echo_cost_p99_us, 1)
                row["core_pct"] = round(st.echo_cost_mean_us / 10_000 * 100, 2)
                # CPU time, not wall time: what the canceller costs whatever else the machine
                # runs (the cost above includes being preempted). Against the same take
                # without cancellation, per 10 ms frame.
                if backend == "none":
                    cpu_none[path] = take.cpu_s
                frames = max(st.echo_frames, 1)
                row["cpu_us"] = round((take.cpu_s - cpu_none[path]) / frames * 1e6, 1) if backend != "none" else 0.0
                row["cpu_core_pct"] = round(row["cpu_us"] / 10_000 * 100, 2)
                row["erle_reported_db"] = None if backend == "none" else _finite(st.echo_erle_db)
                row["delay_reported_ms"] = None if backend == "none" else _finite(st.echo_delay_ms)
                row["frames"] = st.echo_frames
                row["reference_late"] = st.echo_reference_late
            if double_talk:
                a = int((cfg.near_from + 0.1) * CHUNK_HZ)
                b = int((cfg.near_to - 0.1) * CHUNK_HZ)
                near16 = _to16(nears[path])
                corr, lag = _best_lag(out, near16, a, b)
                o = out[a + lag : b + lag]
                row[f"{path}_near_kept_db"] = round(_db(_energy(o) / max(_energy(near16[a:b]), 1e-20)), 1)
                row[f"{path}_near_correlation"] = round(corr, 3)
                if path == "simple":
                    lags[backend] = lag
            if progress:
                print(f"  echo {backend:<7} {path:<7} {row[f'{path}_db']:6.1f} dB", flush=True)
        rows.append(row)
    for row in rows:
        row["added_latency_ms"] = round((lags[row["backend"]] - lags["none"]) * 1000 / CHUNK_HZ, 2)
    result = {"config": asdict(cfg), "far_source": far_source, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    result["markdown"] = markdown(result)
    return result


def _finite(x: float) -> float | None:
    return round(float(x), 1) if x is not None and np.isfinite(x) else None


# -- report --------------------------------------------------------------------------------


def _goal(value: float | None, goal: float, higher: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value >= goal if higher else value <= goal
    return "met" if ok else f"missed by {abs(value - goal):.1f}"


def markdown(result: dict[str, Any]) -> str:
    """The tables for RESULTS.md: figures per backend, then the goals met or missed."""
    cfg = result["config"]
    lines = [
        f"{cfg['seconds']:g} s of far-end speech ({result['far_source']}, -24 dBFS) per case; double talk "
        f"{cfg['near_from']:g}-{cfg['near_to']:g} s at the echo's level; ERLE over far-end-only audio "
        f"from 2 s; drift {cfg['drift_ppm']:g} ppm without double talk. Near kept: the near end's level in "
        "what duplex sends (no cancellation: +3 dB, the echo adds its own). Wall time: the engine's own "
        "figure (stats().echo_cost_mean_us), preemption included; CPU: process CPU time of the take "
        "over the same take without cancellation, per 10 ms frame.",
        "",
        "| backend | simple dB | room dB | drift dB | converged (>= 30 dB) after | near kept (simple / room) | "
        "near corr | added latency | wall time per 10 ms frame (mean / p99) | CPU per frame | CPU, one core | "
        "library ERLE / delay |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        conv = "never" if r["convergence_s"] is None else f"{r['convergence_s']:g} s"
        lib = ("-" if r["backend"] == "none" else
               f"{r['erle_reported_db']} dB / {r['delay_reported_ms']} ms")
        cost = "-" if r["backend"] == "none" else f"{r['cost_mean_us']:.0f} / {r['cost_p99_us']:.0f} us"
        cpu = "-" if r["backend"] == "none" else f"{r['cpu_us']:.0f} us"
        core = "-" if r["backend"] == "none" else f"{r['cpu_core_pct']:.2f} %"
        lines.append(
            f"| {r['backend']} | {r['simple_db']:.1f} | {r['room_db']:.1f} | {r['drift_db']:.1f} | {conv} | "
            f"{r['simple_near_kept_db']:+.1f} / {r['room_near_kept_db']:+.1f} dB | {r['simple_near_correlation']:.2f} | "
            f"{r['added_latency_ms']:.1f} ms | {cost} | {cpu} | {core} | {lib} |")
    lines += ["", "| backend | >= 40 dB simple | >= 30 dB room | near end within 3 dB | < 2 % of one core |",
              "|---|---|---|---|---|"]
    for r in result["rows"]:
        if r["backend"] == "none":
            continue
        worst_near = min(r["simple_near_kept_db"], r["room_near_kept_db"])
        lines.append(
            f"| {r['backend']} | {_goal(r['simple_db'], GOAL_SIMPLE_DB)} | {_goal(r['room_db'], GOAL_ROOM_DB)} | "
            f"{_goal(worst_near, -GOAL_NEAR_DB)} | {_goal(r['cpu_core_pct'], GOAL_CORE_PCT, higher=False)} |")
    return "\n".join(lines) + "\n"


CAP_DB = 90.0
COLORS = {"none": "#888888", "sonora": "#1b9e77", "aec3": "#d95f02"}


def plot(result: dict[str, Any], path: Path) -> Path:
    """ERLE over time, one panel per echo path, one line per backend, the goals dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    panels = [("simple", "simple path (-6 dB, 40 ms)", GOAL_SIMPLE_DB),
              ("room", "room (reverb RT60 250 ms, noise -65 dBFS)", GOAL_ROOM_DB),
              ("drift", f"simple path, mic clock {cfg['drift_ppm']:+g} ppm", GOAL_SIMPLE_DB)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    for ax, (key, title, goal) in zip(axes, panels):
        for r in result["rows"]:
            # A window whose output is all but silent reads 100+ dB: capped, so the rest stays readable.
            w = [np.nan if v is None else min(v, CAP_DB) for v in r[f"{key}_windows_db"]]
            t = (np.arange(len(w)) + 0.5) * WINDOW_S
            ax.plot(t, w, marker="o", ms=3, lw=1.6, color=COLORS.get(r["backend"], "#333"), label=r["backend"])
        ax.axhline(goal, color="#555", ls="--", lw=1)
        ax.text(0.2, goal + 1.5, f"goal {goal:g} dB", fontsize=8, color="#555")
        if key != "drift":
            ax.axvspan(cfg["near_from"], cfg["near_to"] + 0.3, color="#cccccc", alpha=0.5, lw=0)
            ax.text(cfg["near_from"] + 0.1, CAP_DB - 8, "double talk\n(not ERLE)", fontsize=8, color="#444")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("time (s)")
        ax.set_xlim(0, cfg["seconds"])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"echo removed per 0.5 s (dB, capped at {CAP_DB:g})")
    axes[0].set_ylim(-5, CAP_DB + 5)
    # Between the "none" line at 0 dB and the goal line: the one empty band of every panel.
    axes[0].legend(loc="lower left", bbox_to_anchor=(0.01, 0.1), fontsize=9, ncol=3)
    fig.suptitle("duplex echo cancellation: ERLE over time (higher is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: runs the cases, prints the tables, writes echo.json and echo_erle.png."""
    parser = argparse.ArgumentParser(prog="python -m duplex.bench.echo_report", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s per case instead of 16 s")
    parser.add_argument("--out", default=".", help="folder for echo.json and echo_erle.png (default: here)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "echo.json").write_text(json.dumps(result, indent=1))
    png = plot(result, out / "echo_erle.png")
    print(result["markdown"])
    print(f"({result['seconds']:.0f} s) wrote {out / 'echo.json'}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
