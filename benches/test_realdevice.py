"""pytest-benchmark smoke test: duplex and PortAudio on a real PulseAudio null sink.

Runs :func:`duplex.bench.realdevice.run` once in quick mode (1.5 s per run, 3
implementations x 3 loads, about 25 s with the server's start) and puts the figures
measured on the captured monitor signal (gaps, interrupt-to-silence, round trip,
underruns) in ``benchmark.extra_info``. No timing is asserted (shared machines); the
assertions are that every run produced a capture with the tone and a round trip.
Skipped when pulseaudio is not installed, unless ``CI`` is set (then it fails).
Passes with ``--benchmark-disable``.

    pytest benches/test_realdevice.py --benchmark-disable
    python -m duplex.bench.realdevice            # the full run (3 s per run) with a table
"""

from __future__ import annotations

import os

import pytest

from duplex.bench import realdevice

FIELDS = ("roundtrip_ms", "gaps", "gap_ms", "interrupt_ms", "interrupt_minus_rt_ms", "underruns")


def test_realdevice_report(benchmark):
    """Quick real-server run; every implementation x load's figures go to ``extra_info``."""
    if not realdevice.available():
        if os.environ.get("CI"):
            pytest.fail("pulseaudio not installed on CI (scripts/audio-server.sh install)")
        pytest.skip("pulseaudio not installed (scripts/audio-server.sh install)")
    result = benchmark.pedantic(realdevice.run, kwargs={"quick": True}, rounds=1, iterations=1)
    rows = result["rows"]
    assert "skipped" not in result, result
    assert {(r["implementation"], r["load"]) for r in rows} == {
        (i, load) for i in realdevice.IMPLEMENTATIONS for load in realdevice.LOADS
    }
    for row in rows:
        assert "error" not in row, row
        tag = f"{row['implementation']} {row['load']}"
        for key in FIELDS:
            benchmark.extra_info[f"{tag}: {key}"] = row.get(key)
        benchmark.extra_info[f"{tag}: pacat gaps"] = row["pacat"]["gaps"]
        benchmark.extra_info[f"{tag}: pacat interrupt_minus_rt_ms"] = row["pacat"]["interrupt_minus_rt_ms"]
        if row["implementation"] == "duplex":
            benchmark.extra_info[f"{tag}: device_errors"] = row["device_errors"]
        else:
            benchmark.extra_info[f"{tag}: input_overflow"] = row["input_overflow"]
        assert row["captured_s"] > 1.0, row
        assert row["roundtrip_ms"] is not None, row  # the calibration click was captured
        assert row["tone_level_dbfs"] is not None, row  # the tone was captured
