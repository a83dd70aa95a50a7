"""On PipeWire, a server cycle missed with the engine's queue full is counted, with its length.

pipewire-pulse says nothing when PipeWire's graph skips it (no underflow message,
``underrun_for`` 0); the native host finds the loss from the server's read index falling
behind the wall clock (``duplex-engine``'s ``position_clock``). The loss is forced by
stopping pipewire-pulse (SIGSTOP) for 100 ms, as a busy machine delays a daemon without
real-time priority, and judged by an independent recorder on PipeWire's own protocol
(``pw-record``, which does not go through the stopped process): what the engine counts as
device underruns must match, in number and milliseconds, the silences heard at the sink.
The same run as ``python -m duplex.bench.server_stall``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from duplex.bench.server_stall import run_one

from device_helpers import null_sink_server

pytestmark = pytest.mark.sound_server


@pytest.fixture
def pipewire():
    """A fresh PipeWire null-sink server, with pw-record."""
    if not shutil.which("pw-record") and not os.environ.get("CI"):
        pytest.skip("pw-record not installed (apt-get install pipewire-bin)")
    yield from null_sink_server("pipewire")


@pytest.mark.parametrize("latency_ms", [80, 150])
def test_missed_server_cycles_are_counted_as_heard(pipewire, latency_ms):
    r = run_one(pipewire, "pipewire", "pipewire-pulse", stall_ms=100, stalls=3, latency_ms=latency_ms, gap_s=1.2)
    assert r["heard"] >= 3, f"the stalls made no silence at the sink: {r}"
    # One count per silence; the milliseconds within the recorder's 1 ms windows and a
    # graph quantum's rounding.
    assert r["output_underruns"] == r["heard"], r
    assert r["output_underrun_ms"] == pytest.approx(r["heard_ms"], abs=8 + 0.05 * r["heard_ms"]), r
    assert r["ring_underruns"] == 0, f"the engine's own ring ran dry: {r}"
    # The record stream missed the same cycles: counted as input overruns.
    assert r["input_overruns"] >= 1 and r["input_overrun_ms"] > 0.5 * r["heard_ms"], r
