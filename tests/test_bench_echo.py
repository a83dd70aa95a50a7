"""The echo section of ``duplex bench`` (``duplex.bench.echo_report``): its quick mode runs
every backend on every echo path and reports well-formed figures; its echo paths are what
they claim. No timing thresholds: the cost figures are only checked to be numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from duplex.bench import cli as bench_cli  # noqa: E402
from duplex.bench import echo_report  # noqa: E402


def test_the_simple_path_is_half_the_speaker_40_ms_later():
    played = np.zeros(48_000, np.float32)
    played[1000] = 1.0
    echo = echo_report.echo_of(played, "simple")
    assert int(np.argmax(echo)) == 1000 + 1920 and echo.max() == pytest.approx(0.5)


def test_the_drift_path_slides_by_the_clock_error():
    rate = echo_report.DEVICE_HZ
    played = np.random.default_rng(3).uniform(-0.3, 0.3, rate * 4).astype(np.float32)
    fast = echo_report.echo_of(played, "drift", drift_ppm=1000.0)
    plain = echo_report.echo_of(played, "simple")
    # At 1000 ppm the mic reads 1 ms further into the speaker per second: 3.7 ms at 3.7 s.
    a = int(3.7 * rate)
    seg = fast[a : a + 2000]
    errors = [np.sum((seg - plain[a + k : a + k + 2000]) ** 2) for k in range(0, 300)]
    assert abs(int(np.argmin(errors)) - 0.0037 * rate) <= 2


def test_quick_mode_reports_every_backend_with_well_formed_figures(tmp_path):
    args = bench_cli.argparse.Namespace(quick=True, out=str(tmp_path), echo=True, list=False, soak=None)
    assert bench_cli.run(args) == 0
    result = json.loads((tmp_path / "echo.json").read_text())
    assert (tmp_path / "echo_erle.png").stat().st_size > 10_000
    assert "near end within 3 dB" in (tmp_path / "echo.md").read_text()
    rows = {r["backend"]: r for r in result["rows"]}
    assert list(rows) == list(echo_report.BACKENDS)
    for name, r in rows.items():
        for key in ("simple_db", "room_db", "drift_db", "simple_near_kept_db", "room_near_kept_db",
                    "simple_near_correlation", "added_latency_ms", "cost_mean_us", "core_pct", "cpu_us",
                    "cpu_core_pct"):
            assert isinstance(r[key], (int, float)) and math.isfinite(r[key]), (name, key, r[key])
        for path in ("simple", "room", "drift"):
            assert r[f"{path}_render_shift_frames"] == 0, "the echo was not aligned with the rendering"
            windows = r[f"{path}_windows_db"]
            assert len(windows) == int(result["config"]["seconds"] / echo_report.WINDOW_S)
            assert any(w is not None for w in windows)
    # No cancellation sends the echo back untouched; both cancellers remove a lot of it
    # (the full run's figures are in benches/RESULTS.md; these floors are far below them).
    assert abs(rows["none"]["simple_db"]) < 1.0 and rows["none"]["frames"] == 0
    assert rows["none"]["added_latency_ms"] == 0
    for name in ("sonora", "aec3"):
        assert rows[name]["simple_db"] > 20, rows[name]
        assert rows[name]["frames"] > 0 and rows[name]["cost_mean_us"] > 0
        assert rows[name]["simple_near_correlation"] > 0.3, "the near end did not get through"
