"""Resampler quality and speed: duplex's engine resampler against python-soxr and scipy.

duplex resamples capture (to 16 kHz) with its own low-latency polyphase FIR
(``rust/engine/src/polyphase.rs``) and playback with rubato's FFT resampler in 20 ms blocks
(``rust/engine/src/resample.rs``), both exposed to Python as :func:`duplex._engine.resample`
(``low_latency=True`` for the former). That whole-clip call runs the engine's own
``StreamResampler`` over the clip (the code path the capture reader and the playback
producer use) and trims the start-up delay, so its output is time-aligned with its input.
Row ``duplex`` is the path the engine takes for each conversion; ``duplex block FFT`` is the
FFT resampler on every conversion (the capture path before it had the FIR). It is compared with ``soxr.resample`` (quality ``"HQ"`` and
``"VHQ"``) and ``scipy.signal.resample_poly`` (default Kaiser window) on the four
conversions the engine performs: 48 kHz and 44.1 kHz microphones to 16 kHz, and 24 kHz model
audio to 48 kHz and 44.1 kHz speakers. Every resampler gets the same float32 input, because
the engine works in float32.

What is measured, per conversion and resampler:

* **SNR of sines** (100 Hz, 1 kHz, 3 kHz, 6 kHz and 0.9 × the lower Nyquist): a
  least-squares fit of sin + cos at the known frequency, so delay and gain do not count;
  everything else (noise, distortion, aliases, images) does. 100 ms are trimmed at each end.
* **Alias of a log sweep** over the whole input band: per 50-64 ms Kaiser-windowed frame of
  the output, the energy away from the sweep's instantaneous frequency (aliases, images,
  noise), relative to the sweep's own energy; the worst frame is reported.
* **Passband** from a multi-tone signal fitted jointly: ripple (max - min gain) from 50 Hz to
  0.9 × the lower Nyquist (and to 0.8 ×), and the frequencies where the gain falls 0.1 dB and
  3 dB.
* **Throughput** in × real time: seconds of audio per CPU second (``time.process_time``) on a
  10 s noise clip, best of several runs, and as a ratio to python-soxr HQ. python-soxr's
  ``ResampleStream`` fed 10 ms blocks from Python is reported too (a streaming client).

Run ``python -m duplex.bench.resampler`` (add ``--quick`` for a short run, ``--json`` for the
rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from math import gcd
from typing import Any

import numpy as np

from .. import _engine
from .extra_cli import extra_main

__all__ = [
    "CONVERSIONS",
    "AMPLITUDE",
    "resamplers",
    "sine",
    "fit_sine",
    "sine_snr_db",
    "log_sweep",
    "sweep_alias_db",
    "sweep_alias_floor_db",
    "on_tone_grid",
    "gain_curve_db",
    "passband",
    "throughput_x_realtime",
    "measure",
    "format_markdown",
    "run",
    "main",
]

#: (input Hz, output Hz): capture from 48 and 44.1 kHz devices, playback of 24 kHz model audio.
CONVERSIONS: tuple[tuple[int, int], ...] = (
    (48_000, 16_000),
    (44_100, 16_000),
    (24_000, 48_000),
    (24_000, 44_100),
)
#: Peak amplitude of the test sines and sweep (-6 dBFS).
AMPLITUDE = 0.5
#: Length of the log sweep, by quick mode.
SWEEP_S = {True: 2.0, False: 4.0}
#: Reference resampler for the "target" comparison and the throughput ratio.
REFERENCE = "soxr HQ"

Resample = Callable[[np.ndarray, int, int], np.ndarray]


def resamplers() -> dict[str, Resample]:
    """The resamplers under test, by name: each takes (float32 array, from Hz, to Hz) and
    returns the whole resampled clip. soxr and scipy are imported here (the ``bench`` extra)."""
    import soxr
    from scipy.signal import resample_poly

    def poly(x: np.ndarray, src: int, dst: int) -> np.ndarray:
        g = gcd(src, dst)
        return resample_poly(x, dst // g, src // g)

    return {
        # The engine's own paths: capture (to 16 kHz) runs the low-latency polyphase FIR,
        # playback the block FFT resampler; the latter is also shown for capture.
        "duplex": lambda x, src, dst: _engine.resample(x, src, dst, low_latency=dst == 16_000),
        "duplex block FFT": lambda x, src, dst: _engine.resample(x, src, dst),
        "soxr HQ": lambda x, src, dst: soxr.resample(x, src, dst, quality="HQ"),
        "soxr VHQ": lambda x, src, dst: soxr.resample(x, src, dst, quality="VHQ"),
        "scipy resample_poly": poly,
    }


def sine(rate: int, freq: float, seconds: float, amplitude: float = AMPLITUDE, phase: float = 0.0) -> np.ndarray:
    """A float64 sine of ``seconds`` at ``rate``, starting at time 0 with ``phase`` radians."""
    t = np.arange(int(round(rate * seconds))) / rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def fit_sine(y: np.ndarray, rate: int, freq: float) -> tuple[float, np.ndarray]:
    """Least-squares fit of ``a·sin + b·cos`` at ``freq`` (phase-independent): returns the
    fitted amplitude and the residual (``y`` minus the fit), both in float64."""
    y = np.asarray(y, dtype=np.float64)
    t = np.arange(len(y)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.hypot(coef[0], coef[1])), y - basis @ coef


def sine_snr_db(y: np.ndarray, rate: int, freq: float, trim_s: float = 0.0) -> float:
    """SNR in dB of a sine at a known ``freq``: power of the best-fitting sinusoid over the
    power of everything else, after dropping ``trim_s`` seconds at each end."""
    n = int(round(trim_s * rate))
    y = np.asarray(y, dtype=np.float64)
    y = y[n : len(y) - n] if n else y
    amplitude, residual = fit_sine(y, rate, freq)
    signal = amplitude**2 / 2
    noise = float(np.mean(residual**2))
    return float(10 * np.log10(signal / max(noise, 1e-300)))


def log_sweep(rate: int, f1: float, f2: float, seconds: float, amplitude: float = AMPLITUDE) -> np.ndarray:
    """An exponential sine sweep from ``f1`` to ``f2`` Hz over ``seconds`` (float64)."""
    t = np.arange(int(round(rate * seconds))) / rate
    k = np.log(f2 / f1)
    return amplitude * np.sin(2 * np.pi * f1 * seconds / k * (np.exp(t * k / seconds) - 1))


def _sweep_freq(t: np.ndarray | float, f1: float, f2: float, seconds: float) -> Any:
    return f1 * np.exp(np.asarray(t) * np.log(f2 / f1) / seconds)


def sweep_alias_db(
    y: np.ndarray,
    rate: int,
    f1: float,
    f2: float,
    seconds: float,
    amplitude: float = AMPLITUDE,
    guard_bins: int = 10,
    trim_s: float = 0.1,
) -> dict[str, float]:
    """Energy of a resampled log sweep that lies away from the sweep's instantaneous
    frequency, per frame, relative to the sweep's energy (dB).

    ``y`` is the resampler's output at ``rate`` for :func:`log_sweep` (``f1``, ``f2``,
    ``seconds``, ``amplitude``) at the input rate. Frames of about 64 ms (a power of two),
    half-overlapping, Kaiser window with beta 20 (sidelobes below -180 dB). In each frame the
    bins from the sweep's frequency at the frame's start to its end, widened by
    ``guard_bins`` on either side, are the wanted signal; everything else in the output
    band (aliases, images, noise) counts. Where the sweep is above the output Nyquist the
    whole frame counts. Returns the worst frame (``alias_db``) with the sweep frequency
    there (``alias_at_hz``), and the worst frame whose sweep frequency is entirely above the
    output Nyquist (``stopband_db``; NaN when the sweep never gets there).
    """
    from scipy.signal.windows import kaiser

    y = np.asarray(y, dtype=np.float64)
    n = 1 << int(round(np.log2(rate * 0.064)))
    window = kaiser(n, 20.0)
    reference = n * amplitude**2 * float(np.sum(window**2)) / 4  # one-sided sum |X|^2 of the sweep
    freqs = np.fft.rfftfreq(n, 1 / rate)
    bin_hz = rate / n
    skip = int(trim_s * rate)
    starts = np.arange(skip, len(y) - n - skip, n // 2)
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[starts] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    lo = _sweep_freq(starts / rate, f1, f2, seconds)
    hi = _sweep_freq((starts + n) / rate, f1, f2, seconds)
    wanted = (freqs[None, :] >= (lo - guard_bins * bin_hz)[:, None]) & (
        freqs[None, :] <= (hi + guard_bins * bin_hz)[:, None]
    )
    leak = np.where(wanted, 0.0, power).sum(axis=1) / reference
    level = 10 * np.log10(np.maximum(leak, 1e-30))
    worst = int(np.argmax(level))
    above = lo >= rate / 2
    return {
        "alias_db": float(level[worst]),
        "alias_at_hz": float(0.5 * (lo[worst] + hi[worst])),
        "stopband_db": float(level[above].max()) if above.any() else float("nan"),
    }


def sweep_alias_floor_db(src: int, dst: int, seconds: float) -> float:
    """The floor of :func:`sweep_alias_db` for a conversion: the same analysis of a perfect
    answer (the sweep computed directly at the output rate, rounded to float32, stopped
    where it would leave the output band)."""
    f1, f2 = 20.0, 0.99 * src / 2
    f2_out = min(f2, 0.99 * dst / 2)
    seconds_out = seconds * np.log(f2_out / f1) / np.log(f2 / f1)  # same sweep, cut short
    ideal = log_sweep(dst, f1, f2_out, seconds_out).astype(np.float32)
    return sweep_alias_db(ideal, dst, f1, f2_out, seconds_out)["alias_db"]


def _analysis_frames(dst: int, seconds: float) -> int:
    """Output frames :func:`gain_curve_db` analyses: the clip less 100 ms at each end."""
    return int(round(dst * seconds)) - 2 * (dst // 10)


def on_tone_grid(freqs: np.ndarray, dst: int, seconds: float) -> np.ndarray:
    """``freqs`` rounded to whole cycles of :func:`gain_curve_db`'s analysis window
    (multiples of about 1.25 Hz for a 1 s clip), where it measures them."""
    n = _analysis_frames(dst, seconds)
    return np.rint(np.asarray(freqs, dtype=np.float64) * n / dst) * dst / n


def gain_curve_db(
    resample: Resample, src: int, dst: int, freqs: np.ndarray, seconds: float, amplitude: float = 0.02
) -> np.ndarray:
    """Gain in dB at each of ``freqs`` (all below both Nyquists, taken
    :func:`on_tone_grid`), from one multi-tone clip (equal-amplitude sines, spread phases).

    Every tone makes whole cycles in the analysed output (100 ms trimmed at each end), so
    the tones are orthogonal there and one DFT bin each is their least-squares fit: the
    same gains as fitting them jointly, in milliseconds instead of the seconds an SVD of
    a (frames x 2 tones) basis took (it was most of ``duplex bench --quick``)."""
    n = _analysis_frames(dst, seconds)
    bins = np.rint(np.asarray(freqs, dtype=np.float64) * n / dst).astype(np.int64)
    freqs = bins * dst / n
    phases = np.pi * np.arange(len(freqs)) ** 2 / len(freqs)  # Schroeder phases: low crest factor
    t_in = np.arange(int(round(src * seconds))) / src
    x = (amplitude * np.sin(2 * np.pi * freqs[None, :] * t_in[:, None] + phases[None, :])).sum(axis=1)
    y = np.asarray(resample(x.astype(np.float32), src, dst), dtype=np.float64)
    trim = dst // 10
    window = y[trim : trim + n]
    spectrum = np.fft.rfft(window, n)
    return 20 * np.log10(np.maximum(2 * np.abs(spectrum[bins]) / n, 1e-30) / amplitude)


def _crossing(freqs: np.ndarray, gains: np.ndarray, level_db: float) -> float:
    """First frequency (linear interpolation) where the gain falls below ``level_db``."""
    below = np.nonzero(gains < level_db)[0]
    if len(below) == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(freqs[0])
    f0, f1, g0, g1 = freqs[i - 1], freqs[i], gains[i - 1], gains[i]
    return float(f0 + (level_db - g0) * (f1 - f0) / (g1 - g0))


def passband(resample: Resample, src: int, dst: int, quick: bool) -> dict[str, float]:
    """Passband figures: ripple (max - min gain, dB) from 50 Hz to 0.9 × and to 0.8 × the
    lower Nyquist, the gain at 0.9 ×, 0.95 × and 0.99 × that Nyquist, and the frequencies
    (Hz) where the gain first drops by 0.1 dB and 3 dB."""
    nyq = min(src, dst) / 2
    ripple_f = np.geomspace(50.0, 0.9 * nyq, 16 if quick else 40)
    edge_f = np.linspace(0.8 * nyq, 0.995 * nyq, 40 if quick else 80)
    probe_f = np.array([0.95, 0.99]) * nyq
    seconds = 1.0 if quick else 2.0
    probe_f = on_tone_grid(probe_f, dst, seconds)
    freqs = np.unique(on_tone_grid(np.concatenate([ripple_f, edge_f, probe_f]), dst, seconds))
    gains = gain_curve_db(resample, src, dst, freqs, seconds)
    band9 = freqs <= 0.9 * nyq * (1 + 1e-9)
    band8 = freqs <= 0.8 * nyq * (1 + 1e-9)
    return {
        "ripple_db": float(gains[band9].max() - gains[band9].min()),
        "ripple_08_db": float(gains[band8].max() - gains[band8].min()),
        "gain_09_db": float(gains[band9][-1]),
        "gain_095_db": float(gains[np.argmin(np.abs(freqs - probe_f[0]))]),
        "gain_099_db": float(gains[np.argmin(np.abs(freqs - probe_f[1]))]),
        "edge_01db_hz": _crossing(freqs, gains, -0.1),
        "edge_3db_hz": _crossing(freqs, gains, -3.0),
    }


def throughput_x_realtime(
    resample: Resample, src: int, dst: int, clip_s: float = 10.0, repeats: int = 5
) -> dict[str, float]:
    """Seconds of audio resampled per CPU second (``time.process_time``, all threads) for a
    ``clip_s`` noise clip: best and median of ``repeats`` runs after one warm-up."""
    x = (0.1 * np.random.default_rng(1).standard_normal(int(src * clip_s))).astype(np.float32)
    resample(x[: src // 10], src, dst)
    cpu = []
    for _ in range(repeats):
        start = time.process_time()
        resample(x, src, dst)
        cpu.append(time.process_time() - start)
    best, median = min(cpu), float(np.median(cpu))
    return {"x_realtime": clip_s / max(best, 1e-9), "x_realtime_median": clip_s / max(median, 1e-9)}


def _soxr_stream(quality: str, block_ms: int = 10) -> Resample:
    """python-soxr's ``ResampleStream`` fed ``block_ms`` blocks from Python, as a streaming
    client would; returns the concatenated output."""
    import soxr

    def run_stream(x: np.ndarray, src: int, dst: int) -> np.ndarray:
        stream = soxr.ResampleStream(src, dst, 1, dtype="float32", quality=quality)
        block = src * block_ms // 1000
        parts = [stream.resample_chunk(x[i : i + block]) for i in range(0, len(x), block)]
        parts.append(stream.resample_chunk(x[:0], last=True))
        return np.concatenate(parts)

    return run_stream


def measure(name: str, resample: Resample, src: int, dst: int, quick: bool) -> dict[str, Any]:
    """Every figure for one resampler and conversion, as one row."""
    nyq = min(src, dst) / 2
    sine_s = 0.5 if quick else 1.0
    snr: dict[str, float] = {}
    for freq in (100.0, 1000.0, 3000.0, 6000.0, round(0.9 * nyq)):
        x = sine(src, freq, sine_s, phase=0.3).astype(np.float32)
        snr[f"{freq:g}"] = sine_snr_db(resample(x, src, dst), dst, freq, trim_s=0.1)
    sweep_s = SWEEP_S[quick]
    f1, f2 = 20.0, 0.99 * src / 2
    swept = resample(log_sweep(src, f1, f2, sweep_s).astype(np.float32), src, dst)
    alias = sweep_alias_db(swept, dst, f1, f2, sweep_s)
    row: dict[str, Any] = {
        "conversion": f"{src / 1000:g}k -> {dst / 1000:g}k",
        "from_hz": src,
        "to_hz": dst,
        "resampler": name,
        "snr_db": snr,
        "snr_min_db": min(snr.values()),
        "snr_1k_db": snr["1000"],
        **alias,
        **passband(resample, src, dst, quick),
        **throughput_x_realtime(resample, src, dst, repeats=5 if quick else 20),
    }
    return row


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:.{digits}f}"  # NaN -> dash


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (one line per conversion and resampler)."""
    lines = [
        "| Conversion | Resampler | SNR min dB | SNR 1 kHz dB | worst alias dB (at Hz) "
        "| ripple ≤0.9 Nyq dB | ripple ≤0.8 Nyq dB | −0.1 / −3 dB edge Hz | × real time | vs soxr HQ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speed = r.get("x_realtime", float("nan"))
        ratio = r.get("vs_soxr_hq", float("nan"))
        if "snr_min_db" not in r:  # a speed-only row (streaming)
            lines.append(
                f"| {r['conversion']} | {r['resampler']} | | | | | | | {speed:,.0f} | {_fmt(ratio, 2)} |"
            )
            continue
        lines.append(
            f"| {r['conversion']} | {r['resampler']} | {r['snr_min_db']:.1f} | {r['snr_1k_db']:.1f} "
            f"| {r['alias_db']:.1f} ({r['alias_at_hz']:,.0f}) | {r['ripple_db']:.3f} | {r['ripple_08_db']:.4f} "
            f"| {_fmt(r['edge_01db_hz'], 0)} / {_fmt(r['edge_3db_hz'], 0)} | {speed:,.0f} | {_fmt(ratio, 2)} |"
        )
    return "\n".join(lines)


def run(quick: bool = False) -> dict[str, Any]:
    """Measures every resampler on every conversion.

    Returns ``rows`` (one dict per conversion and resampler, plus a speed-only row per
    conversion for python-soxr HQ streaming in 10 ms blocks), ``markdown`` (the table),
    ``verdict`` (per conversion: duplex minus soxr HQ on SNR, alias and ripple, the
    throughput ratio, and the alias analysis's own floor) and ``seconds`` (how long the run
    took). ``quick`` shortens the signals and the number of timing runs (about 5 s instead
    of about 20 s).
    """
    started = time.perf_counter()
    impls = resamplers()
    rows: list[dict[str, Any]] = []
    verdict: dict[str, dict[str, float]] = {}
    for src, dst in CONVERSIONS:
        group = [measure(name, fn, src, dst, quick) for name, fn in impls.items()]
        stream = {
            "conversion": group[0]["conversion"],
            "from_hz": src,
            "to_hz": dst,
            "resampler": "soxr HQ, ResampleStream 10 ms blocks",
            **throughput_x_realtime(_soxr_stream("HQ"), src, dst, repeats=3 if quick else 10),
        }
        group.append(stream)
        ref = next(r for r in group if r["resampler"] == REFERENCE)
        for r in group:
            r["vs_soxr_hq"] = r["x_realtime"] / ref["x_realtime"]
        ours = next(r for r in group if r["resampler"] == "duplex")
        verdict[ours["conversion"]] = {
            "snr_min_delta_db": ours["snr_min_db"] - ref["snr_min_db"],
            "alias_delta_db": ours["alias_db"] - ref["alias_db"],
            "ripple_delta_db": ours["ripple_db"] - ref["ripple_db"],
            "throughput_ratio": ours["vs_soxr_hq"],
            "alias_floor_db": sweep_alias_floor_db(src, dst, SWEEP_S[quick]),
        }
        rows.extend(group)
    return {
        "rows": rows,
        "markdown": format_markdown(rows),
        "verdict": verdict,
        "quick": quick,
        "seconds": time.perf_counter() - started,
    }


def _summary(result: dict[str, Any]) -> str:
    lines = [""]
    for conv, v in result["verdict"].items():
        lines.append(
            f"{conv}: duplex - soxr HQ: SNR min {v['snr_min_delta_db']:+.1f} dB, "
            f"alias {v['alias_delta_db']:+.1f} dB (analysis floor {v['alias_floor_db']:.1f} dB), "
            f"ripple {v['ripple_delta_db']:+.3f} dB; "
            f"throughput x{v['throughput_ratio']:.2f}"
        )
    return "\n".join([*lines, f"({result['seconds']:.1f} s)"])


def main(argv: list[str] | None = None) -> None:
    """Command line: prints the table (or the rows as JSON with ``--json``)."""
    extra_main(argv, prog="python -m duplex.bench.resampler", description=__doc__.split("\n")[0],
               quick_help="short signals, fewer timing runs", run=lambda args: run(quick=args.quick),
               summary=_summary)


if __name__ == "__main__":
    main()
