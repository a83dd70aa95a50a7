"""Devices that come and go: the engine on a PulseAudio server that dies, restarts, and
gains and loses sinks under it.

Each test starts its own server (``duplex.testing.audio_server``), because it kills or rewires
it. What is asserted is behaviour: the stream is rebuilt and audio flows again on the same
rings, calls fail clearly while the device is gone, nothing hangs, and a dead stream does
not spin a core (its error-callback rate is bounded; without the throttle cpal's ALSA
worker reported about 550 000 errors a second).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import duplex
from duplex.errors import DeviceError


pytestmark = pytest.mark.sound_server

PLAY_HZ = duplex.PLAY_RATE_HZ


from device_helpers import server, tone, wait_until  # noqa: E402,F401  (server: a fixture)


def drain(engine: duplex.AudioEngine) -> list:
    """Reads every chunk already captured; stops at the first wait."""
    chunks = []
    while True:
        try:
            chunk = engine.read_array(timeout=0)
        except DeviceError:
            return chunks
        if chunk is None:
            return chunks
        chunks.append(chunk)


def test_server_killed_and_restarted_under_a_running_engine(server):
    # The monitor's loopback of the tone is the signal: no echo cancellation.
    with duplex.AudioEngine(echo_cancellation=False) as engine:
        engine.play(tone(30.0), timeout=5)  # far more than plays before the kill
        wait_until(lambda: engine.stats().frames_played > 24_000, 10, "playback to start")
        time.sleep(0.3)  # captured audio piles up unread
        server.kill()
        killed = engine.stats()

        # A dead stream does not spin: errors come at a bounded rate, then stop.
        time.sleep(1.0)
        after = engine.stats()
        rate = after.device_error_callbacks - killed.device_error_callbacks
        assert rate < 2_000, f"{rate} error callbacks in the second after the kill"

        # Captured audio is not lost: everything read before the loss is still there ...
        assert drain(engine), "the audio captured before the kill was lost"
        # ... and then read() and play() say the device is gone, after their timeout.
        t = time.monotonic()
        with pytest.raises(DeviceError, match="device is gone"):
            engine.read(timeout=0.2)
        assert time.monotonic() - t < 2.0
        with pytest.raises(DeviceError, match="device is gone"):
            engine.play(tone(0.02), timeout=0.2)
        buffered_when_lost = engine.stats().playback_buffered_ms
        assert buffered_when_lost > 20_000, "queued playback was dropped"

        server.restart()
        played = engine.stats().frames_played
        wait_until(lambda: engine.stats().frames_played > played + 48_000, 15,
                   "playback to continue on the restarted server")
        stats = engine.stats()
        # Queued playback continued from where it stopped (the ring was kept).
        assert stats.playback_buffered_ms < buffered_when_lost
        assert stats.underruns == 0, stats.summary()
        # Capture flows again, and it hears the tone through the new server's monitor.
        drain(engine)
        chunks = [engine.read_array(timeout=2) for _ in range(25)]
        assert all(c is not None for c in chunks)
        level = np.sqrt(np.mean(np.concatenate(chunks[5:]).astype(float) ** 2)) / 32768
        assert level > 0.1, f"the restored capture does not hear the tone (rms {level:.3f})"
        engine.play(tone(0.1), timeout=2)  # accepted again
        t = time.monotonic()
    assert time.monotonic() - t < 2.0, "close() took too long"


def test_close_does_not_hang_when_the_server_died(server):
    engine = duplex.AudioEngine().start()
    engine.play(tone(5.0), timeout=5)
    wait_until(lambda: engine.stats().frames_played > 4800, 10, "playback to start")
    server.kill()
    time.sleep(0.05)
    t = time.monotonic()
    engine.stop()
    engine.close()
    took = time.monotonic() - t
    assert took < 1.0, f"stop()+close() took {took:.2f} s after the server died"
    assert not engine.running


def test_default_sink_change_is_followed(server):
    with duplex.AudioEngine() as engine:
        engine.play(tone(10.0), timeout=5)
        wait_until(lambda: engine.stats().frames_played > 4800, 10, "playback to start")
        ours = [s for s in server.sink_inputs() if s["sink"] == server.sink_index("nullsink")]
        assert ours, server.sink_inputs()
        server.add_sink("headset", make_default=True)  # a headset is plugged in
        headset = server.sink_index("headset")
        wait_until(lambda: any(s["sink"] == headset for s in server.sink_inputs()), 5,
                   "the engine's stream to move to the new default sink")
        played = engine.stats().frames_played
        wait_until(lambda: engine.stats().frames_played > played + 24_000, 5,
                   "playback to go on on the new default sink")


def test_sink_removed_and_added_again(server):
    null_module = server.module_index("module-null-sink")
    with duplex.AudioEngine() as engine:
        engine.play(tone(30.0), timeout=5)
        wait_until(lambda: engine.stats().frames_played > 4800, 10, "playback to start")
        server.remove_module(null_module)  # the only sink (and source) goes away
        drain(engine)

        def gone() -> bool:
            try:
                engine.play(tone(0.01), timeout=0)
            except DeviceError:
                return True
            return False

        wait_until(gone, 5, "the engine to notice the sink is gone")
        server.add_sink("nullsink", make_default=True)
        server.pactl("set-default-source", "nullsink.monitor")
        played = engine.stats().frames_played
        wait_until(lambda: engine.stats().frames_played > played + 24_000, 15,
                   "playback to resume on the sink added again")
        assert engine.read_array(timeout=5) is not None
