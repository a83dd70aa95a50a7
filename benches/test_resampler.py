"""pytest-benchmark suite: the engine's resampler against python-soxr and scipy.

``test_resampler_report`` runs :func:`duplex.bench.resampler.run` once in quick mode and
puts its figures in ``benchmark.extra_info`` (SNR, sweep alias, ripple and throughput per
conversion and resampler); ``test_throughput`` times each resampler on a 10 s clip with
pytest-benchmark itself. No timing is asserted (the machines this runs on are shared);
the assertions are about shape and quality. Passes with ``--benchmark-disable`` (each
benchmarked function then runs once, untimed).

    pytest benches/test_resampler.py                       # timed
    pytest benches/ --benchmark-disable                    # smoke (CI)
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("soxr")
pytest.importorskip("scipy")

from duplex.bench import resampler  # noqa: E402

CONVERSION_IDS = [f"{a // 1000}k-{b // 1000}k" for a, b in resampler.CONVERSIONS]


def test_resampler_report(benchmark):
    """Quick quality and speed report; every figure goes to ``extra_info``."""
    result = benchmark.pedantic(resampler.run, kwargs={"quick": True}, rounds=1, iterations=1)
    rows = result["rows"]
    names = set(resampler.resamplers())
    assert len(rows) == len(resampler.CONVERSIONS) * (len(names) + 1)
    for row in rows:
        prefix = f"{row['conversion']} {row['resampler']}"
        benchmark.extra_info[f"{prefix}: x_realtime"] = round(row["x_realtime"], 1)
        benchmark.extra_info[f"{prefix}: vs_soxr_hq"] = round(row["vs_soxr_hq"], 3)
        if "snr_min_db" in row:
            for key in ("snr_min_db", "snr_1k_db", "alias_db", "ripple_db", "edge_01db_hz", "edge_3db_hz"):
                benchmark.extra_info[f"{prefix}: {key}"] = round(float(row[key]), 4)
    for conversion, verdict in result["verdict"].items():
        for key, value in verdict.items():
            benchmark.extra_info[f"{conversion} duplex - soxr HQ: {key}"] = round(value, 4)
    duplex_rows = [r for r in rows if r["resampler"] == "duplex"]
    assert len(duplex_rows) == len(resampler.CONVERSIONS)
    assert all(r["snr_1k_db"] > 120 and r["alias_db"] < -120 for r in duplex_rows)


@pytest.mark.parametrize("conversion", resampler.CONVERSIONS, ids=CONVERSION_IDS)
@pytest.mark.parametrize("name", ["duplex", "soxr HQ", "soxr VHQ", "scipy resample_poly"])
def test_throughput(benchmark, name, conversion):
    """One whole-clip call on 10 s of noise; ``extra_info['x_realtime']`` is audio seconds
    per second of the fastest round."""
    src, dst = conversion
    fn = resampler.resamplers()[name]
    clip = (0.1 * np.random.default_rng(1).standard_normal(10 * src)).astype(np.float32)
    out = benchmark.pedantic(fn, args=(clip, src, dst), rounds=10, iterations=1, warmup_rounds=1)
    assert abs(len(out) - 10 * dst) <= 1
    if benchmark.stats is not None:  # None with --benchmark-disable
        benchmark.extra_info["x_realtime"] = round(10.0 / benchmark.stats.stats.min, 1)
