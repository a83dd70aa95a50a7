"""The device buffer and the counters below the engine's ring, on a real PulseAudio server.

* ``latency=`` is really applied: what the host grants (periods, the delay it reports) is read
  back, and ``"low"`` and ``"high"`` give different buffers.
* A gap a listener hears is counted: the engine's process is stopped (SIGSTOP) for longer
  than its device buffer while the server plays on, so the server runs out of audio and
  plays silence; an independent recorder (``pacat`` on the sink's monitor) hears it, and the
  milliseconds counted agree with the milliseconds heard. The engine's own ring never runs dry (it holds seconds of audio), so only
  the device counters can tell; they must. (Whether capture loses audio too depends on how
  much the server buffers for a stopped reader, so it is printed, not asserted.)
* While the server is dead, read() and play() raise DeviceLostError after their timeout, and
  the events say lost, then restored.

Behaviour only: nothing here asserts a duration (the machine is shared and noisy).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import duplex
from duplex.errors import DeviceError, DeviceLostError

pytestmark = pytest.mark.sound_server

PLAY_HZ = duplex.PLAY_RATE_HZ


from device_helpers import server, tone, wait_until  # noqa: E402,F401  (server: a fixture)


def granted(latency: str, host: str = "auto") -> duplex.Stats:
    with duplex.AudioEngine(input_device=False, latency=latency, host=host) as engine:  # type: ignore[arg-type]
        engine.play(tone(3.0), timeout=5)
        wait_until(lambda: engine.stats().output_callbacks >= 40, 15, "the output to run")
        return engine.stats()


def test_the_latency_setting_is_read_back_from_the_host(server):
    low, high = granted("low"), granted("high")
    print(f"[latency] low: period {low.output_period_frames} delay {low.output_delay_ms:.1f} ms; "
          f"high: period {high.output_period_frames} delay {high.output_delay_ms:.1f} ms; "
          f"thread {high.output_thread!r}")
    assert high.host == "pulse", "auto picks the native host where a server answers"
    assert (low.latency_requested_ms, high.latency_requested_ms) == (20.0, 150.0)
    assert low.device_state == high.device_state == "running"
    # What the host granted, read back from the stream: the larger buffer has larger periods
    # and holds more audio ahead of the listener.
    assert 0 < low.output_period_frames < high.output_period_frames
    assert 0 < low.output_delay_ms < high.output_delay_ms
    assert high.output_thread, "the device thread says how it is scheduled"


def test_the_default_is_the_high_latency(server):
    with duplex.AudioEngine(echo_cancellation=False) as engine:
        wait_until(lambda: engine.stats().input_callbacks >= 10, 15, "the devices to run")
        stats = engine.stats()
    # The native host (auto, with a server) takes back what it holds on interrupt, so its
    # robust buffer is the bigger one; ALSA plays its buffer out, so it keeps 80 ms.
    assert (stats.host, stats.latency_requested_ms) == ("pulse", 150.0)
    assert stats.output_period_frames > 0 and stats.input_period_frames > 0
    assert stats.output_buffer_ms >= 100, f"the server granted {stats.output_buffer_ms} ms"
    alsa = granted("high", host="alsa")
    assert (alsa.host, alsa.latency_requested_ms) == ("alsa", 80.0)


STALLED_CLIENT = """
import json, sys, time
import numpy as np
import duplex
t = np.arange(30 * 24000) / 24000
tone = np.round(0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
with duplex.AudioEngine(echo_cancellation=False) as engine:
    engine.play(tone, timeout=5)
    while engine.stats().output_callbacks < 100:
        time.sleep(0.02)
    print(json.dumps(engine.stats().as_dict()), flush=True)
    sys.stdin.readline()  # the parent stops and continues this process meanwhile
    time.sleep(1.0)
    print(json.dumps(engine.stats().as_dict()), flush=True)
"""


def heard_gaps(recording: np.ndarray, rate: int = 48_000) -> tuple[int, int]:
    """Gaps a listener hears in a recorded tone (as in ``reference/measuring.md``): runs of at
    least 5 ms of 1 ms blocks far below the tone's level, inside the tone. Returns (gaps, ms)."""
    block = rate // 1000
    n = len(recording) // block
    level = np.sqrt(np.mean((recording[: n * block].reshape(n, block) / 32768.0) ** 2, axis=1))
    loud = np.flatnonzero(level > 0.05)
    if len(loud) == 0:
        return 0, 0
    quiet = level[loud[0]: loud[-1] + 1] <= 0.05
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    runs = runs[runs >= 5]
    return len(runs), int(runs.sum())


def test_a_stalled_engine_process_is_counted_as_device_underruns(server, tmp_path):
    # An independent recorder of what the sink played (another process, as a listener).
    recording = tmp_path / "monitor.raw"
    with open(recording, "wb") as sink:
        recorder = subprocess.Popen(["pacat", "--record", "-d", "nullsink.monitor", "--raw",
                                     "--format=s16le", "--rate=48000", "--channels=1",
                                     "--latency-msec=10"], stdout=sink, stdin=subprocess.DEVNULL)
    proc = subprocess.Popen([sys.executable, "-c", STALLED_CLIENT], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        before = json.loads(proc.stdout.readline())
        # 400 ms without the engine, against an 80 ms device buffer: the server runs dry.
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.4)
        proc.send_signal(signal.SIGCONT)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        after = json.loads(proc.stdout.readline())
        proc.wait(timeout=20)
    finally:
        proc.kill()
        proc.wait()
        recorder.terminate()
        recorder.wait(timeout=10)
    gaps, lost_ms = heard_gaps(np.fromfile(recording, dtype="<i2").astype(np.float64))
    counted_ms = after["output_device_underrun_ms"]
    print(f"[xrun] device underruns {before['output_device_underruns']} -> "
          f"{after['output_device_underruns']} ({after['output_device_underrun_ms']:.0f} ms), "
          f"input overruns {after['input_device_overruns']} ({after['input_device_overrun_ms']:.0f} ms), "
          f"backend xruns {after['output_backend_xruns']}/{after['input_backend_xruns']}, "
          f"ring underruns {after['underruns']}; heard at the monitor: {gaps} gaps ({lost_ms} ms)")
    assert after["output_device_underruns"] > before["output_device_underruns"], after
    assert after["output_device_underrun_ms"] > before["output_device_underrun_ms"]
    # The engine's own ring held seconds of audio all along: the gap was below it.
    assert after["underruns"] == 0
    # The counters tell what the listener heard: the gap is there, and the milliseconds the
    # engine says were lost are those the recorder found missing (give or take the edges
    # of each gap and the blocks of the recorder; over a whole run they agreed within 20 %).
    assert gaps >= 1 and lost_ms >= 100, "the stall was heard at the sink"
    assert 0.5 * lost_ms - 50 <= counted_ms <= 2 * lost_ms + 100, (counted_ms, lost_ms)


def test_without_realtime_the_device_threads_say_so(server):
    with duplex.AudioEngine(input_device=False, realtime=False) as engine:
        wait_until(lambda: engine.stats().output_callbacks >= 5, 15, "the output to run")
        assert engine.stats().output_thread == "normal (real-time off)"


def test_read_and_play_raise_device_lost_while_the_server_is_dead(server):
    with duplex.AudioEngine(echo_cancellation=False) as engine:
        engine.play(tone(20.0), timeout=5)
        wait_until(lambda: engine.stats().frames_played > 24_000, 15, "playback to start")
        assert engine.next_device_event(timeout=0) is None
        server.kill()
        lost = engine.next_device_event(timeout=10)
        assert lost is not None and lost.kind == "device_lost", lost
        assert engine.stats().device_state == "lost"
        while True:  # what was captured before the loss is still readable
            try:
                if engine.read(timeout=0) is None:
                    break
            except DeviceLostError:
                break
        with pytest.raises(DeviceLostError, match="device is gone") as info:
            engine.read(timeout=0.2)
        assert isinstance(info.value, DeviceError)
        with pytest.raises(DeviceLostError, match="device is gone"):
            engine.play(tone(0.02), timeout=0.2)
        server.restart()
        restored = engine.next_device_event(timeout=20)
        assert restored is not None and restored.kind == "device_restored", restored
        assert restored.outage_ms > 0 and restored.attempts >= 1
        stats = engine.stats()
        assert stats.device_state == "running" and stats.device_restores >= 1
        assert engine.read(timeout=5) is not None


def test_duplex_devices_probe_shows_the_host_and_what_it_grants(server):
    out = subprocess.run([sys.executable, "-m", "duplex", "devices", "--probe", "--latency", "low"],
                         capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("host: ALSA"), out
    assert "default output: 48000 Hz; asked for 20 ms of buffer, granted " in out, out
    assert "default input: 48000 Hz; asked for 20 ms" in out, out
