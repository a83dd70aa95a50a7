"""The soak, short: a few simulated minutes of conversation with interrupts and underruns
on the virtual device, faster than real time. ``duplex bench --soak 60`` runs the hour."""

from __future__ import annotations

from duplex.bench.soak import run_soak


def test_a_few_simulated_minutes_keep_resources_flat_and_every_frame_accounted():
    result = run_soak(minutes=4.0, seed=1)
    assert result.ok, result.summary()
    assert result.turns > 15 and result.interrupts > 3
    assert result.simulated_s >= 180
    assert result.frames_pushed == result.frames_played + result.frames_flushed > 0
    assert result.frames_buffered_after_stop == 0
    assert result.capture_overflow_frames == 0 and result.capture_frames_unaccounted == 0
    assert len(result.rss_mb) >= 2, "resources sampled"
