"""Behaviour of the resampler and scale benchmarks (``duplex.bench.resampler`` / ``.scale``):
the measurements measure what they claim, duplex's resampler meets its stated floors, and a
quick scale run reports one row per engine count."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soxr")
pytest.importorskip("scipy")

from duplex import _engine  # noqa: E402
from duplex.bench import resampler, scale  # noqa: E402

# Stated floors for duplex's resampler (measured on every conversion: SNR 136-143 dB, sweep
# alias -135 to -138 dB, flat to 0.001 dB up to 0.9 x Nyquist, -0.1 dB at 0.936-0.956 x
# Nyquist, which is at or above python-soxr HQ's 0.93 x).
SNR_1K_FLOOR_DB = 120.0
SNR_ANY_FLOOR_DB = 110.0
ALIAS_CEILING_DB = -120.0
RIPPLE_09_CEILING_DB = 0.01
EDGE_01DB_FLOOR = 0.93


@pytest.mark.parametrize("noise_rms, expected_db", [(1e-3, 50.97), (1e-5, 90.97)])
def test_sine_snr_is_right_on_a_noisy_sine(noise_rms, expected_db):
    """A 0.5 sine (power 0.125) plus white noise of known rms: SNR = 10·log10(0.125/σ²),
    whatever the phase."""
    rng = np.random.default_rng(7)
    rate, freq = 16_000, 1234.5
    for phase in (0.0, 1.1, 2.9):
        x = resampler.sine(rate, freq, 4.0, 0.5, phase) + noise_rms * rng.standard_normal(4 * rate)
        assert resampler.sine_snr_db(x, rate, freq) == pytest.approx(expected_db, abs=0.15)


def test_fit_sine_ignores_delay_and_finds_the_amplitude():
    """A delayed sine at the fitted frequency is a perfect fit (delay is not error)."""
    rate = 48_000
    x = resampler.sine(rate, 997.0, 1.0, 0.25, phase=0.7)
    amplitude, residual = resampler.fit_sine(x, rate, 997.0)
    assert amplitude == pytest.approx(0.25, rel=1e-9)
    assert np.max(np.abs(residual)) < 1e-9
    assert resampler.sine_snr_db(x, rate, 997.0, trim_s=0.1) > 200


def test_gain_curve_measures_a_known_gain():
    """A "resampler" that halves its input has -6.02 dB at every tone."""
    freqs = np.array([100.0, 1000.0, 5000.0, 7000.0])
    gains = resampler.gain_curve_db(lambda x, a, b: 0.5 * x, 16_000, 16_000, freqs, 1.0)
    assert np.allclose(gains, 20 * np.log10(0.5), atol=1e-6)


def test_sweep_alias_catches_naive_decimation():
    """Dropping samples without a filter aliases the sweep's top octaves into the band;
    duplex's resampler keeps the same sweep clean."""
    src, dst, seconds = 48_000, 16_000, 2.0
    f1, f2 = 20.0, 0.99 * src / 2
    x = resampler.log_sweep(src, f1, f2, seconds).astype(np.float32)
    naive = resampler.sweep_alias_db(x[::3], dst, f1, f2, seconds)
    ours = resampler.sweep_alias_db(_engine.resample(x, src, dst), dst, f1, f2, seconds)
    assert resampler.sweep_alias_floor_db(src, dst, seconds) < -140  # the analysis can see it
    assert naive["alias_db"] > -10
    assert naive["stopband_db"] > -10
    assert ours["alias_db"] < ALIAS_CEILING_DB
    assert ours["stopband_db"] < ALIAS_CEILING_DB


@pytest.mark.parametrize("src, dst", resampler.CONVERSIONS)
def test_duplex_resampler_meets_its_floors(src, dst):
    """SNR > 120 dB at 1 kHz and > 110 dB for every test sine up to 0.9 x Nyquist, sweep
    alias below -120 dB, flat passband (< 0.01 dB) to 0.9 x Nyquist, -0.1 dB point past
    0.93 x Nyquist, on all four conversions the engine performs."""
    row = resampler.measure("duplex", resampler.resamplers()["duplex"], src, dst, quick=True)
    nyq = min(src, dst) / 2
    assert row["snr_1k_db"] > SNR_1K_FLOOR_DB, row["snr_db"]
    assert row["snr_min_db"] > SNR_ANY_FLOOR_DB, row["snr_db"]
    assert row["alias_db"] < ALIAS_CEILING_DB, row
    assert row["ripple_db"] < RIPPLE_09_CEILING_DB, row
    assert row["edge_01db_hz"] > EDGE_01DB_FLOOR * nyq, row
    assert row["x_realtime"] > 0


def test_resampler_rows_and_table_have_every_column():
    """format_markdown renders a measured row and a speed-only row."""
    impl = resampler.resamplers()["soxr HQ"]
    row = resampler.measure("soxr HQ", impl, 24_000, 48_000, quick=True)
    row["vs_soxr_hq"] = 1.0
    speed_only = {"conversion": row["conversion"], "resampler": "x", "x_realtime": 10.0, "vs_soxr_hq": 0.5}
    table = resampler.format_markdown([row, speed_only])
    assert table.count("\n") == 3
    assert "soxr HQ" in table and "| x |" in table
    for key in ("snr_min_db", "alias_db", "ripple_db", "edge_01db_hz", "edge_3db_hz", "x_realtime"):
        assert np.isfinite(row[key]), key


def test_scale_quick_reports_one_row_per_engine_count():
    """Quick mode: one row per engine count, every field present, every engine played and
    captured audio."""
    result = scale.run(quick=True, seconds=0.6)
    rows = result["rows"]
    assert [r["engines"] for r in rows] == list(scale.ENGINE_COUNTS)
    fields = {
        "threads", "cpu_percent", "cpu_percent_per_engine", "cpu_percent_by_thread", "underruns",
        "engines_with_underruns", "capture_overflows", "jitter_p99_ms_median", "jitter_p99_ms_max",
        "jitter_max_ms", "callback_p99_us_max", "playback_buffer_min_ms", "capture_backlog_max_ms",
        "feed_late_p99_ms", "loop_lag_p99_ms", "chunks_read_pct", "frames_played_min",
    }  # fmt: skip
    for row in rows:
        assert fields <= row.keys(), fields - row.keys()
        assert row["frames_played_min"] > 0
        assert row["chunks_read_pct"] > 0
        assert row["cpu_percent"] > 0
        assert row["threads"] >= 2 * row["engines"]  # a clock and a sink thread per device
        assert "virtual device (clock)" in row["cpu_percent_by_thread"]
    assert "| 64 |" in result["markdown"]
