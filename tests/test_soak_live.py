"""The whole-session soak, short: a few simulated minutes of a Live conversation through the
SDK and the emulator (in its own process), with barge-ins, video and one fault per
connection (goAway, an abrupt 1011, a dropped socket), faster than real time.
``duplex bench --soak 60`` runs the hour."""

from __future__ import annotations

from duplex.bench.soak_live import run_live_soak


def test_a_few_simulated_minutes_of_live_session_with_faults_and_video_hold():
    # Resources are compared from past the capture ring's first wrap (120 s): before it, the
    # ring's pages are still being touched for the first time (23 MB), which is not growth.
    result = run_live_soak(minutes=5.5, speed=10.0, seed=1, fault_after_s=(25.0, 45.0), warmup_s=130.0)
    assert result.ok, result.summary()
    assert result.simulated_s >= 240
    # Every kind of fault happened and the conversation resumed after each.
    assert all(result.faults.get(k, 0) >= 1 for k in ("go_away", "close_1011", "drop")), result.summary()
    assert result.connections >= 4 and result.server["totals"]["resumed"] >= 3, result.summary()
    assert result.turns >= 10 and result.interrupts >= 2, result.summary()
    assert result.video_frames_sent >= 150 and result.video_frames_received_by_server > 0
    # Every frame accounted: playback exactly, capture up to what was in flight at a cut.
    assert result.frames_pushed == result.frames_played + result.frames_flushed > 0
    assert result.capture_overflow_frames == 0
    # A clean reconnect (goAway) loses nothing; a cut one (1011, a dropped socket) only what
    # was in flight when the server stopped reading.
    for c in result.per_connection:
        lost = c["sent"] - c["chunks"]
        assert lost == 0 if c["fault"] == "go_away" else lost >= 0, (c, result.summary())
    assert len(result.rss_mb) >= 3, "resources sampled"
