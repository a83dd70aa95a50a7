"""pytest-benchmark suite: 1, 8, 32 and 64 engines on virtual devices in one process.

Runs :func:`duplex.bench.scale.run` once in quick mode (about 1 s per engine count) and
puts each count's figures (underruns, overflows, jitter, CPU) in ``benchmark.extra_info``.
No timing or CPU figure is asserted (shared machines); the assertions are about shape and
that every engine played and captured. Passes with ``--benchmark-disable``.

    pytest benches/test_scale.py
    python -m duplex.bench.scale            # the full run (10 s per count) with tables
"""

from __future__ import annotations

from duplex.bench import scale

FIELDS = (
    "cpu_percent",
    "cpu_percent_per_engine",
    "underruns",
    "engines_with_underruns",
    "capture_overflows",
    "jitter_p99_ms_median",
    "jitter_p99_ms_max",
    "callback_p99_us_max",
    "playback_buffer_min_ms",
    "capture_backlog_max_ms",
    "feed_late_p99_ms",
    "loop_lag_p99_ms",
    "chunks_read_pct",
)


def test_scale_report(benchmark):
    """Quick scale run; every count's figures go to ``extra_info``."""
    result = benchmark.pedantic(scale.run, kwargs={"quick": True}, rounds=1, iterations=1)
    rows = result["rows"]
    assert [r["engines"] for r in rows] == list(scale.ENGINE_COUNTS)
    for row in rows:
        for key in FIELDS:
            benchmark.extra_info[f"{row['engines']} engines: {key}"] = round(float(row[key]), 3)
        for group, percent in row["cpu_percent_by_thread"].items():
            benchmark.extra_info[f"{row['engines']} engines: cpu % {group}"] = round(percent, 2)
        assert row["frames_played_min"] > 0, row
        assert row["chunks_read_pct"] > 0, row
