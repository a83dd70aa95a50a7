"""The real-device benchmark's analysis on synthetic recordings (no sound server needed)."""

from __future__ import annotations

import numpy as np

from duplex.bench import devicegaps as dg
from duplex.bench.devicegaps_report import markdown, plot

RATE = 48_000


def _clock(t0: float = 100.0):
    return (lambda i: t0 + i / RATE), (lambda t: max(0, int(round((t - t0) * RATE))))


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (dg.TONE_AMP * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def test_gaps_counts_silent_runs_inside_the_tone_only():
    t_of, i_of = _clock()
    x = np.concatenate([np.zeros(RATE // 2, np.float32), _tone(3.0), np.zeros(RATE // 2, np.float32)])
    a = RATE // 2
    x[a + RATE : a + RATE + RATE // 100] = 0  # a 10 ms gap
    x[a + 2 * RATE : a + 2 * RATE + RATE // 50] = 0  # a 20 ms gap
    x[a + RATE // 2 : a + RATE // 2 + RATE // 1000 * 3] = 0  # 3 ms: below the 5 ms minimum
    r = dg.analyse_gaps(x, RATE, t_of, i_of, {"tone": t_of(RATE // 4)})
    assert r["heard"] and r["gaps"] == 2
    assert 28 <= r["gap_ms"] <= 32
    assert r["gaps_per_min"] > 0 and 2.5 < r["window_s"] < 3.0
    assert r["onset_ms"] > 200  # the tone started 250 ms after the mark


def test_breaks_find_what_the_gap_windows_miss_and_nothing_in_a_clean_tone():
    t_of, i_of = _clock()
    x = np.concatenate([np.zeros(RATE // 2, np.float32), _tone(3.0), np.zeros(RATE // 2, np.float32)])
    assert dg.analyse_gaps(x, RATE, t_of, i_of, {"tone": t_of(RATE // 4)})["breaks"] == 0
    a = RATE // 2
    # 2 ms of silence inserted (a server's short underrun): too short for a gap, one break.
    x = np.concatenate([x[: a + RATE], np.zeros(RATE // 500, np.float32), x[a + RATE :]])
    # 37 samples dropped (a skipped block): the tone jumps phase, level unchanged.
    x = np.concatenate([x[: a + 2 * RATE], x[a + 2 * RATE + 37 :]])
    r = dg.analyse_gaps(x, RATE, t_of, i_of, {"tone": t_of(RATE // 4)})
    assert r["gaps"] == 0 and r["breaks"] == 2, r
    # A gap is also a break (its two ends, 10 ms apart, count once).
    x[a + RATE // 2 : a + RATE // 2 + RATE // 100] = 0
    r = dg.analyse_gaps(x, RATE, t_of, i_of, {"tone": t_of(RATE // 4)})
    assert r["gaps"] == 1 and r["breaks"] == 3, r


def test_gaps_of_a_silent_run_is_not_zero():
    t_of, i_of = _clock()
    r = dg.analyse_gaps(np.zeros(RATE, np.float32), RATE, t_of, i_of, {"tone": t_of(0)})
    assert r["heard"] is False and r["gaps"] is None


def test_bargein_measures_interrupt_to_last_audible_sample():
    t_of, i_of = _clock()
    x = np.zeros(RATE * 6, np.float32)
    x[RATE // 10 + 480 : RATE // 10 + 960] = 0.5  # click 10 ms after its mark
    tones, ints = [], []
    for k in range(2):
        start = RATE + k * 2 * RATE
        stop = start + RATE // 2 + RATE * (25 + 5 * k) // 1000  # 25 / 30 ms after interrupt
        x[start:stop] = _tone((stop - start) / RATE)
        tones.append(t_of(start - RATE // 10))
        ints.append(t_of(start + RATE // 2))
    r = dg.analyse_bargein(x, RATE, i_of, {"click": t_of(RATE // 10), "tones": tones, "interrupts": ints})
    assert r["n"] == 2 and r["censored"] == 0
    assert abs(r["roundtrip_ms"] - 10) < 0.5
    assert abs(r["raw_median_ms"] - 27.5) < 1.0
    assert abs(r["minus_rt_median_ms"] - 17.5) < 1.0


def test_capture_latency_pairs_each_click_with_its_chunk():
    t_of, i_of = _clock()
    x = np.zeros(RATE * 2, np.float32)
    cap = np.zeros(16_000 * 2, np.int16)
    for k in range(3):
        m = RATE // 5 + k * RATE * 2 // 5
        x[m : m + 480] = 0.5
        c = (m // 3) + 16 * 5  # the capture is 5 ms behind the monitor
        cap[c : c + 160] = 16000
    lens = [320] * 100
    times = [t_of(0) + (k + 1) * 0.02 + 0.004 for k in range(100)]  # each chunk 4 ms after it is full
    r = dg.analyse_capture(x, t_of, cap, times, lens)
    assert r["clicks_at_monitor"] == 3 and r["clicks_captured"] == 3 and r["n"] == 3
    assert all(4 <= v <= 25 for v in r["latency_ms"]), r


def test_report_and_plot_are_well_formed(tmp_path):
    meta = {"server": "test", "sink_latency_us": 1000, "seconds": 2.0, "repeat": 1, "interrupts": 2,
            "clicks": 3, "loadavg_start": (1.0, 1.0, 1.0), "loadavg_end": (2.0, 1.0, 1.0), "cpus": 2, "wall_s": 9}
    rows = [
        {"task": "gaps", "subject": "duplex-80", "load": "idle", "loadavg_start": 1.0, "gaps": 0,
         "gaps_per_min": 0.0, "gap_ms": 0.0, "counters": {"underruns": 0, "device_errors": 0}},
        {"task": "gaps", "subject": "cookbook", "load": "gil", "loadavg_start": 1.0, "gaps": 9,
         "gaps_per_min": 270.0, "gap_ms": 300.0, "counters": {"output_underflow": 8}},
        {"task": "bargein", "subject": "duplex-80", "load": "idle", "roundtrip_ms": 90.0, "raw_median_ms": 20.0,
         "raw_p95_ms": 25.0, "minus_rt_median_ms": -70.0, "minus_rt_p95_ms": -65.0, "n": 2, "censored": 0,
         "counters": {"period_frames": 1920}},
        {"task": "capture", "subject": "sd-input", "load": "idle", "latency_median_ms": 15.0,
         "latency_p95_ms": 18.0, "n": 3, "clicks_at_monitor": 3},
        {"task": "gaps", "subject": "duplex-20", "load": "busy", "error": "boom"},
    ]
    md = markdown({"rows": rows, "meta": meta})
    assert "| duplex-80 | 0 |" in md and "270" in md and "boom" in md
    png = plot({"rows": rows, "meta": meta}, tmp_path / "p.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"
