"""Behaviour of the benchmark harness (duplex.bench): the card model, the baselines, the
measurements and the CLI. Nothing here asserts timing figures."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from duplex.bench import loads, metrics
from duplex.bench.adapter import DuplexAdapter
from duplex.bench.baseline import CallbackBaseline, QueueBaseline, simple_resample
from duplex.bench.virtual_clock import InputModel, OutputModel

RATE, P = 48_000, 480


def tone_pcm(ms: int, level: float = 0.3) -> bytes:
    """A 24 kHz s16le tone with no silent samples (it has a DC offset)."""
    t = np.arange(24 * ms) / 24_000
    return np.round((level * np.sin(2 * np.pi * 220 * t) + 0.05) * 32767).astype("<i2").tobytes()


# -- the card model --------------------------------------------------------------------


def test_late_delivery_is_an_underrun_measured_by_timestamps() -> None:
    out = OutputModel(t0=0.0, rate=RATE, period_frames=P, buffer_periods=2)
    # Primed with 2 periods of silence: the first request comes one period in.
    assert out.request_time() == pytest.approx(0.010)
    period = np.full(P, 0.5, np.float32)
    assert out.deliver(period, 0.010, audible_if_late=True) is None
    assert out.request_time() == pytest.approx(0.020)
    # The card needs frame 3*P at t = 30 ms; the callback delivers at 45 ms: 15 ms late.
    gap = out.deliver(period, 0.045, audible_if_late=True)
    assert gap is not None and gap.frames == 720 and gap.audible
    assert out.underruns() == (1, pytest.approx(15.0))
    rec = out.recording()
    assert np.all(rec[2 * P : 3 * P] == 0.5)
    assert np.all(rec[3 * P : 3 * P + 720] == 0.0)
    assert np.all(rec[3 * P + 720 : 4 * P + 720] == 0.5)


def test_late_delivery_while_idle_is_an_xrun_not_an_underrun() -> None:
    out = OutputModel(t0=0.0, rate=RATE, period_frames=P, buffer_periods=2)
    out.deliver(np.zeros(P, np.float32), 0.5, audible_if_late=False)
    assert out.xruns() == 1
    assert out.underruns() == (0, 0.0)


def test_blocking_write_returns_when_the_last_frame_is_in_the_buffer() -> None:
    out = OutputModel(t0=0.0, rate=RATE, period_frames=P, buffer_periods=2)
    returns_at = out.write_blocking(np.ones(4800, np.float32), 0.0, audible_if_late=False)
    # 2 primed periods + 100 ms of audio, buffer of 2 periods: returns after 100 ms.
    assert returns_at == pytest.approx(0.100)
    assert len(out.handovers) == 1 and len(out.handovers[0]) == 10


def test_capture_buffer_overrun_drops_periods() -> None:
    source = np.arange(10 * P, dtype=np.float32)
    inp = InputModel(0.0, source, RATE, P, capacity_periods=2)
    got = inp.take(0.0505, periods=3)  # periods 0..5 have arrived; only 2 fit
    assert [k for k, _ in got] == [0, 1]
    assert inp.lost_periods == 4 and inp.lost_period_indices == {2, 3, 4, 5}
    assert np.array_equal(got[1][1], source[P : 2 * P])
    assert inp.ready_time(1, 0.0505) == pytest.approx(0.060)


def test_simple_resample_lengths() -> None:
    assert len(simple_resample(np.ones(960), 48_000, 16_000)) == 320
    assert len(simple_resample(np.ones(240), 24_000, 48_000)) == 480
    assert len(simple_resample(np.ones(240), 24_000, 44_100)) == 441


# -- measurements ----------------------------------------------------------------------


def test_interrupt_latency_finds_the_last_audible_frame() -> None:
    signal = np.zeros(4000, np.float32)
    signal[:1000] = 0.5
    signal[1000:1100] = 1e-4  # a fade tail below -60 dBFS counts as silence
    ms, censored = metrics.interrupt_latency_ms(signal, 500.5, 3000, RATE)
    assert ms == pytest.approx((1000 - 500.5) / 48)
    assert not censored
    # Already silent at the call: 0; sound up to the window's end: censored.
    assert metrics.interrupt_latency_ms(signal, 2000, 3000, RATE) == (0.0, False)
    assert metrics.interrupt_latency_ms(signal, 10, 800, RATE)[1]
    # With the next turn's start known: censored only if still sounding then.
    assert not metrics.interrupt_latency_ms(signal, 500.5, 3000, RATE, next_turn_frame=1500)[1]
    assert metrics.interrupt_latency_ms(signal, 500.5, 3000, RATE, next_turn_frame=900)[1]


def test_clicks_are_paired_in_order_and_lost_ones_skipped() -> None:
    # Four clicks; the device dropped the third. Chunk 3-4 carry click 1 (two chunks).
    enter = [1.0, 1.5, 2.0, 2.5]
    survived = [True, True, False, True]
    times = [1.00, 1.02, 1.04, 1.52, 1.54, 1.56, 2.06, 2.53]
    peaks = [0.0, 0.5, 0.0, 0.4, 0.4, 0.0, 0.0, 0.5]
    m = metrics.match_clicks(enter, survived, times, peaks, 0.25)
    assert m.lost == 1 and m.unread == 0 and m.mismatched == 0
    assert m.latencies_ms[0] == pytest.approx(20.0)
    assert m.latencies_ms[1] == pytest.approx(20.0)
    assert m.latencies_ms[2] is None
    assert m.latencies_ms[3] == pytest.approx(30.0)


def test_interval_jitter_is_distance_from_the_period() -> None:
    jitter = metrics.interval_jitter_ms([np.array([0.0, 0.010, 0.025, 0.035])], 0.010)
    assert jitter == pytest.approx([0.0, 5.0, 0.0])


# -- the implementations behind one interface --------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda sig: QueueBaseline(input_signal=sig),
        lambda sig: CallbackBaseline(input_signal=sig),
        lambda sig: CallbackBaseline(input_signal=sig, buffer_periods=4),
        lambda sig: DuplexAdapter(input_signal=sig),
    ],
    ids=["cookbook", "callback", "callback-4p", "duplex"],
)
def test_every_implementation_has_the_same_interface(make) -> None:
    signal = np.zeros(RATE * 3, np.float32)
    impl = make(signal).start()
    try:
        chunk = impl.read(timeout=1.0)
        assert isinstance(chunk, bytes) and len(chunk) == 640
        for _ in range(5):
            impl.play(tone_pcm(120))
        time.sleep(0.35)
        t_int = time.perf_counter()
        impl.interrupt()
        time.sleep(0.45)
        impl.play(tone_pcm(40))
        impl.end_turn()
        time.sleep(0.1)
        stats = impl.stats()
        for key in ("underruns", "underrun_silence_ms", "xruns", "frames_played", "capture_overflow_frames"):
            assert key in stats
        assert stats["frames_played"] > 0
    finally:
        impl.stop()
    rec = impl.recording()
    assert rec.dtype == np.float32 and rec.ndim == 1
    assert np.abs(rec).max() > 0.1  # the turn was heard
    # After the barge-in the output went silent before the next turn: not censored.
    frame = impl.device_frame_at(t_int)
    _, censored = metrics.interrupt_latency_ms(rec, frame, impl.device_frame_at(t_int + 0.44), RATE)
    assert not censored


def test_a_callback_late_because_of_the_gil_is_an_underrun() -> None:
    base = CallbackBaseline(buffer_periods=2).start()
    try:
        base.play(tone_pcm(1000))
        time.sleep(0.1)
        n = int(80e6 / loads.calibrate_sum_range())  # ~80 ms holding the GIL in one C call
        sum(range(n))
        time.sleep(0.1)
        stats = base.stats()
    finally:
        base.stop()
    assert stats["underruns"] >= 1
    assert stats["underrun_silence_ms"] > 20  # the hold minus the 10 ms of slack, at least


def test_loads_run_and_report() -> None:
    made = [loads.CGilLoad(5), loads.PyLoopLoad(5), loads.ServerMessageLoad(50),
            loads.JpegLoad(20, size=128), loads.GcLoad(live_pairs=5_000, per_tick=200)]
    for load in made:
        load.prepare()
        load.start()
        time.sleep(0.15)
        load.stop()
        load.cleanup()
        summary = load.summary()
        assert summary["cpu_s"] > 0, load.name
    assert made[0].summary()["bursts"] >= 1
    assert made[2].summary()["messages"] >= 1
    assert made[3].summary()["frames"] >= 1


# -- the CLI ---------------------------------------------------------------------------


def test_cli_quick_writes_markdown_json_and_plots(tmp_path, capsys) -> None:
    from duplex.bench import cli

    out = tmp_path / "bench"
    code = cli.main(["--quick", "--seconds", "0.6", "--skip-extra", "--out", str(out),
                     "--scenarios", "idle", "cgil50"])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    # It says how long it will take before starting, then reports progress after every run,
    # with underruns in true units (a count in the run's window, not a per-minute rate).
    lines = printed.splitlines()
    assert re.search(r"8 runs|2 scenarios x 4 implementations, 0.6 s measured each: about \d+ s", printed)
    progress = [line for line in lines if re.match(r"\[\d/8\] ", line)]
    assert [p.split("]")[0] for p in progress] == [f"[{k}/8" for k in range(1, 9)]
    assert all(re.search(r"underruns +\d+ in \d+\.\d s .*\(\d+ s of runs left\)$", p) for p in progress), progress
    for name in ("results.md", "results.json", "jitter.png", "underruns.png", "interrupt.png", "capture.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    assert {(r["scenario"], r["implementation"]) for r in data["runs"]} == {
        (s, i) for s in ("idle", "cgil50") for i in ("duplex", "cookbook", "callback", "callback-4p")
    }
    assert "interrupt_ratio_vs_duplex" in data["summary"]["headline"]
    text = (out / "results.md").read_text()
    assert "| cgil50 | duplex |" in text and "interrupt-to-silence" in text
    assert (out / "jitter.png").read_bytes()[:4] == b"\x89PNG"
