"""Smoke test of the real-sound-server benchmark (:mod:`duplex.bench.devicegaps`).

Runs it in quick mode (2 s cells) for duplex and the cookbook client under two loads, plus
barge-in and capture latency, on a fresh PulseAudio null sink (about a minute), and puts the
figures in ``benchmark.extra_info``. No timing is asserted (shared machines): only that every
cell ran, the recorder heard the tone, and the numbers are well formed. Skipped when
pulseaudio is not installed, unless ``CI`` is set (then it fails).

    pytest benches/test_devicegaps.py --benchmark-disable
    python -m duplex.bench.devicegaps          # the full run (about 10 minutes)
"""

from __future__ import annotations

import math

from duplex.bench import devicegaps
from duplex.bench.devicegaps_report import markdown
from duplex.testing.servers import require

SUBJECTS = ("duplex-80", "cookbook")
LOADS = ("idle", "gil+busy")


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def test_devicegaps_quick(benchmark):
    """Quick run: every cell yields numbers; the report renders."""
    require("pulseaudio")
    res = benchmark.pedantic(devicegaps.run, kwargs={"quick": True, "subjects": SUBJECTS, "loads": LOADS,
                                                     "progress": False}, rounds=1, iterations=1)
    rows = res["rows"]
    assert not [r for r in rows if "error" in r], rows
    gaps = [r for r in rows if r["task"] == "gaps"]
    assert {(r["subject"], r["load"]) for r in gaps} == {(s, x) for s in SUBJECTS for x in LOADS}
    for r in gaps:
        assert r["heard"], r  # the recorder heard the tone
        assert _number(r["gaps_per_min"]) and r["gaps"] >= 0 and r["window_s"] > 1.0, r
        assert r["counters"], r
        benchmark.extra_info[f"gaps/min {r['subject']} {r['load']}"] = r["gaps_per_min"]
    for r in (r for r in rows if r["task"] == "bargein"):
        assert _number(r["roundtrip_ms"]), r
        assert r["n"] + r["censored"] + r["silent_at_interrupt"] == 2, r
        if r["n"]:
            assert _number(r["raw_median_ms"]) and r["raw_median_ms"] >= 0, r
        benchmark.extra_info[f"barge-in median ms {r['subject']}"] = r["raw_median_ms"]
    caps = [r for r in rows if r["task"] == "capture"]
    assert {r["subject"] for r in caps} == {"duplex-80", "sd-input"}
    for r in caps:
        assert r["clicks_at_monitor"] == 3 and r["n"] >= 1, r
        assert _number(r["latency_median_ms"]), r
        benchmark.extra_info[f"capture median ms {r['subject']}"] = r["latency_median_ms"]
    assert "Gaps per minute" in markdown(res)
