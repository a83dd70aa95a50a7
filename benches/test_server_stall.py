"""Smoke test of :mod:`duplex.bench.server_stall` (one short stall on PipeWire, about 10 s):
the command runs and prints its table. Figures are reported, not checked; the behaviour is
asserted in ``tests/test_pipewire_counters.py``. Skipped where PipeWire is not installed,
unless ``CI`` is set (then it fails)."""

from __future__ import annotations

from duplex.bench import server_stall
from duplex.testing.servers import require


def test_server_stall_quick(capsys):
    require("pipewire")
    assert server_stall.main(["--stall-ms", "50", "--stalls", "1", "--latency", "150"]) == 0
    out = capsys.readouterr().out
    assert "| 1 x 50 ms of pipewire-pulse | 150 ms |" in out, out
