"""pytest-benchmark suite: duplex against the pure-Python baselines, short smoke runs.

Each test runs one implementation under one background load (the scenarios of
``duplex bench``) once, and reports the measured figures in ``benchmark.extra_info``
(underruns, silence, jitter, interrupt-to-silence, capture latency, CPU). The timing that
pytest-benchmark itself records is the wall time of the whole run and means nothing; no
test asserts a number. Works the same under ``--benchmark-disable`` (the body runs once).

    pytest benches/test_duplex_vs_baseline.py                         # ~45 s
    pytest benches/ --benchmark-disable                               # CI smoke
    DUPLEX_BENCH_SECONDS=2.5 pytest benches/test_duplex_vs_baseline.py --benchmark-json=out.json

For the full report with plots use ``duplex bench`` (``python -m duplex.bench.cli``).
"""

from __future__ import annotations

import math
import os

import pytest

from duplex.bench.scenarios import DEFAULT_IMPLEMENTATIONS, DEFAULT_SCENARIOS, RunConfig, run_one

SECONDS = float(os.environ.get("DUPLEX_BENCH_SECONDS", "0.8"))
CONFIG = RunConfig.quick(SECONDS)


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@pytest.mark.parametrize("implementation", DEFAULT_IMPLEMENTATIONS)
@pytest.mark.parametrize("scenario", DEFAULT_SCENARIOS)
def test_scenario(benchmark, scenario: str, implementation: str) -> None:
    """One smoke run; the figures go to ``extra_info``."""
    benchmark.group = f"duplex-vs-baseline:{scenario}"
    result = benchmark.pedantic(run_one, args=(implementation, scenario, CONFIG), rounds=1, iterations=1)
    interrupts = sorted(result.interrupt_ms)
    capture = sorted(result.capture_ms)
    benchmark.extra_info.update(
        {
            "scenario": scenario,
            "implementation": implementation,
            "window_s": result.window_s,
            "underruns_per_min": result.underruns_per_min,
            "silence_ms_per_min": result.silence_ms_per_min,
            "jitter_p99_ms": _clean(result.jitter_ms.get("p99")),
            "jitter_max_ms": _clean(result.jitter_ms.get("max")),
            "interrupt_ms": interrupts,
            "interrupt_median_ms": interrupts[len(interrupts) // 2] if interrupts else None,
            "capture_median_ms": capture[len(capture) // 2] if capture else None,
            "clicks_lost": result.clicks_lost,
            "cpu_s_per_min": result.cpu_s_per_min,
            "load": result.load,
        }
    )
    # Behaviour, not timing: the run measured something and the engine kept its promises
    # that do not depend on the machine's speed.
    assert result.window_s > 0
    if implementation == "duplex":
        assert result.capture_overflow_frames == 0
