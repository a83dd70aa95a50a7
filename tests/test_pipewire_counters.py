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

import json
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


#: PipeWire's default graph quantum at 48 kHz (1024 frames): the server skips whole cycles,
#: and the read index the engine follows moves a cycle at a time.
QUANTUM_MS = 1024 / 48


@pytest.mark.parametrize(("latency_ms", "relapse_ms"), [(80, 0), (150, 0), (150, 60)],
                         ids=["80ms", "150ms", "150ms-relapse"])
def test_missed_server_cycles_are_counted_as_heard(pipewire, latency_ms, relapse_ms):
    """With ``relapse_ms`` the daemon stops again just after each stall, inside one window
    of the position clock, as a server catching up on a busy machine misses again."""
    r = run_one(pipewire, "pipewire", "pipewire-pulse", stall_ms=100, stalls=3, latency_ms=latency_ms, gap_s=1.2,
                relapse_ms=relapse_ms)
    report = json.dumps(r)  # whole, so that a failure on CI says where each silence was
    for stall in r["per_stall"]:
        assert stall["heard"], f"a stall made no silence at the sink: {report}"
        # Counted by the next reading, at its own stall, whatever else happened meanwhile.
        assert stall["output_underruns"] >= 1, f"a stall was not counted: {report}"
        assert stall["output_underrun_ms"] >= 0.5 * stall["heard_ms"], f"a stall was counted short: {report}"
    # One count per silence, except that silences in one window of the position clock
    # (0.2 s or two buffers: a server catching up after a stall can miss a cycle again)
    # are one count of their summed length.
    assert r["stalls"] <= r["output_underruns"] <= r["heard"], report
    # Every millisecond heard lost is counted, within the quantum the positions move by and
    # the recorder's 1 ms windows.
    assert r["output_underrun_ms"] == pytest.approx(r["heard_ms"], abs=QUANTUM_MS + 0.05 * r["heard_ms"]), report
    assert r["ring_underruns"] == 0, f"the engine's own ring ran dry: {report}"
    # The record stream missed the same cycles: counted as input overruns.
    assert r["input_overruns"] >= 1 and r["input_overrun_ms"] > 0.5 * r["heard_ms"], report
