"""The Python API end to end on the virtual device: capture, playback, flush, counters."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from conftest import dominant_freq, read_wav, rms, sine, sine_fit_residual, to_i16

import duplex


def collect(engine: duplex.AudioEngine, seconds: float) -> np.ndarray:
    """Reads capture chunks until `seconds` of 16 kHz audio have arrived."""
    chunks = []
    while sum(len(c) for c in chunks) < 16_000 * seconds:
        chunk = engine.read_array(timeout=5.0)
        assert chunk is not None, "a chunk arrives within 5 s"
        chunks.append(chunk)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def test_wav_in_comes_out_as_16k_chunks_with_the_same_content(virtual_engine, tmp_wav):
    # A 44.1 kHz stereo WAV through a 48 kHz stereo device: two resamplings and a downmix.
    clip = sine(44_100, 440, 1.5)
    stereo = np.repeat(to_i16(clip), 2)
    path = tmp_wav("speech.wav", stereo, 44_100, channels=2)
    engine = virtual_engine(input=path, channels=2, speed=0)
    raw = engine.read(timeout=5.0)
    assert isinstance(raw, bytes) and len(raw) == 640, "20 ms of 16 kHz 16-bit mono"
    first = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    audio = np.concatenate([first, collect(engine, 1.2)])
    body = audio[800:16_000]
    assert dominant_freq(body, 16_000) == pytest.approx(440, abs=1)
    assert rms(body) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    # Sample for sample against the ideal sine (16-bit in, 16-bit out): no glitch at any
    # chunk seam, and time-aligned with the file to within a fraction of a sample.
    error = sine_fit_residual(audio[100:19_000], 16_000, 440)
    assert error < 2e-3, f"max deviation {error}"
    expected = sine(16_000, 440, 1.5)
    assert np.max(np.abs(audio[100:19_000] - expected[100:19_000])) < 0.02
    stats = engine.stats()
    assert stats.capture_overflows == 0
    assert stats.chunks_read >= 60


def test_chunk_ms_sets_the_chunk_size(virtual_engine):
    engine = virtual_engine(chunk_ms=40, speed=0)
    assert len(engine.read(timeout=5.0)) == 1_280
    assert engine.chunk_bytes == 1_280


def test_24k_pcm_in_becomes_an_output_wav_at_the_device_rate(virtual_engine, tmp_path):
    out = tmp_path / "played.wav"
    engine = virtual_engine(sample_rate=44_100, channels=2, output=out, speed=4)
    answer = to_i16(sine(24_000, 600, 0.8))
    for start in range(0, len(answer), 960):  # 40 ms chunks, as the service sends
        engine.play(answer[start : start + 960].tobytes())
    engine.end_turn()
    deadline = time.monotonic() + 5
    while engine.stats().playback_buffered_ms > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    engine.stop()
    played, rate, channels = read_wav(out)
    assert (rate, channels) == (44_100, 2)
    assert np.array_equal(played[:, 0], played[:, 1])
    loud = np.flatnonzero(np.abs(played[:, 0]) > 1e-3)
    body = played[loud[0] : loud[-1], 0]
    assert len(body) == pytest.approx(0.8 * 44_100, abs=60)
    assert dominant_freq(body, 44_100) == pytest.approx(600, abs=1)
    assert rms(body[500:-500]) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert engine.stats().underruns == 0


def test_numpy_int16_and_bytes_play_the_same(virtual_engine):
    engine = virtual_engine(speed=8)
    pcm = to_i16(sine(24_000, 500, 0.2))
    engine.play(pcm)
    engine.play(pcm.tobytes())
    engine.play(bytearray(pcm.tobytes()))
    engine.play(memoryview(pcm.tobytes()))
    engine.end_turn()
    assert engine.stats().turn_received_ms == pytest.approx(800)


def test_interrupt_silences_and_the_next_turn_plays(virtual_engine):
    engine = virtual_engine(speed=1, prebuffer_ms=100)
    engine.play(to_i16(sine(24_000, 440, 3.0)))
    time.sleep(0.5)
    before = engine.stats()
    report = engine.interrupt()
    assert isinstance(report, duplex.InterruptReport)
    assert 250 < report.heard_ms < 700, report
    assert report.received_ms == pytest.approx(3_000)
    assert report.discarded_ms > 2_000
    time.sleep(0.2)
    after = engine.stats()
    assert after.flushes == before.flushes + 1
    assert after.output_peak_dbfs == -120.0, "silent after the flush"
    engine.play(to_i16(sine(24_000, 1_000, 0.3)))
    engine.end_turn()
    time.sleep(0.5)
    engine.stop()
    rec = engine.recording()[:, 0]
    assert after.underruns == 0
    # The recording: 440 Hz, then silence, then the next turn at 1 kHz.
    loud = np.flatnonzero(np.abs(rec) > 1e-4)
    gaps = np.flatnonzero(np.diff(loud) > 4_800)
    assert len(gaps) == 1, "one silent gap, between the two turns"
    first, second = rec[loud[0] : loud[gaps[0]]], rec[loud[gaps[0] + 1] : loud[-1]]
    assert dominant_freq(first, 48_000) == pytest.approx(440, abs=2)
    assert dominant_freq(second, 48_000) == pytest.approx(1_000, abs=2)
    assert len(second) == pytest.approx(0.3 * 48_000, abs=100)
    # The first turn stopped within about what had been heard (+ one period and the fade).
    assert len(first) / 48 == pytest.approx(report.heard_ms, abs=10 + 5 + 15)


def test_turn_progress_and_counters_move(virtual_engine):
    engine = virtual_engine(speed=1, input=duplex.Tone(300, 0.25), prebuffer_ms=50)
    engine.play(to_i16(sine(24_000, 440, 0.3)))
    engine.end_turn()
    time.sleep(0.5)
    s = engine.stats()
    assert s.turn_received_ms == pytest.approx(300)
    assert s.turn_played_ms == pytest.approx(300, abs=1)
    assert s.frames_played == pytest.approx(0.3 * 48_000, abs=480)
    assert s.frames_rendered >= s.frames_played
    assert s.frames_captured > 0.4 * 48_000
    assert s.output_callbacks > 40 and s.input_callbacks > 40
    assert s.input_rms_dbfs == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=0.2)
    assert s.capture_buffered_ms > 0, "nobody read"
    assert 0 < s.callback_p50_us <= s.callback_p99_us <= s.callback_max_us
    assert s.jitter_p99_ms < 50
    assert s.device_errors == 0 and s.last_device_error == ""
    assert "underruns" in s.summary() and s.as_dict()["flushes"] == 0


def test_underrun_is_counted_and_filled_with_silence(virtual_engine):
    engine = virtual_engine(speed=1, prebuffer_ms=50)
    engine.play(to_i16(sine(24_000, 440, 0.1)))
    time.sleep(0.3)
    s = engine.stats()
    assert s.underruns == 1
    assert s.underrun_silence_ms > 100
    engine.end_turn()
    time.sleep(0.05)
    assert engine.stats().underruns == 1, "ending a turn that ran dry adds no underrun"


def test_capture_overflow_is_counted_when_nobody_reads(virtual_engine):
    engine = virtual_engine(speed=20, capture_buffer_ms=200)
    time.sleep(0.3)
    s = engine.stats()
    assert s.capture_overflows > 0
    assert s.capture_overflow_frames > 0
    # The oldest audio is still there, whole chunks of it.
    assert len(engine.read(timeout=1.0)) == 640


def test_looping_echo_path(virtual_engine):
    engine = virtual_engine(speed=2, loopback_delay_ms=40, loopback_gain=0.5, prebuffer_ms=20)
    engine.read(timeout=1.0)
    engine.play(to_i16(sine(24_000, 700, 0.3)))
    engine.end_turn()
    audio = collect(engine, 0.8)
    echo = audio[np.abs(audio) > 0.01]
    assert len(echo) > 0.2 * 16_000
    assert np.max(np.abs(audio)) == pytest.approx(0.25, abs=0.01)


def test_async_chunks_and_play_async():
    async def main() -> tuple[int, float]:
        vd = duplex.VirtualDevice(input=duplex.Tone(500, 0.5), speed=1)
        async with duplex.AudioEngine(backend=vd, prebuffer_ms=20) as engine:
            count = 0
            started = time.monotonic()
            async for chunk in engine.chunks():
                assert len(chunk) == 640
                await engine.play_async(chunk)  # any 16-bit PCM plays; here 20 ms at 24 kHz
                count += 1
                if count == 25:
                    break
            elapsed = time.monotonic() - started
            await engine.read_async(timeout=0)
            return count, elapsed

    count, elapsed = asyncio.run(main())
    assert count == 25
    # Chunks arrive at real-time pace: 25 x 20 ms, give or take the start-up.
    assert 0.35 < elapsed < 2.0


def test_play_async_waits_for_room_without_blocking_the_loop():
    async def main() -> list[float]:
        vd = duplex.VirtualDevice(speed=1)
        ticks: list[float] = []
        async with duplex.AudioEngine(backend=vd, playback_buffer_ms=500, prebuffer_ms=50) as engine:

            async def ticker() -> None:
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.005)

            task = asyncio.create_task(ticker())
            pcm = to_i16(sine(24_000, 440, 0.2))
            for _ in range(5):  # 1 s of audio into a 0.5 s buffer: must wait for room
                await engine.play_async(pcm)
            task.cancel()
        return ticks

    ticks = asyncio.run(main())
    assert len(ticks) > 20, "the event loop kept running while play_async waited"
    assert max(np.diff(ticks)) < 0.1


def test_restart_after_stop(virtual_engine):
    engine = virtual_engine(speed=0)
    assert engine.read(timeout=1.0) is not None
    engine.stop()
    assert not engine.running
    engine.start()
    assert engine.running and engine.read(timeout=1.0) is not None


def test_repr_and_device_params(virtual_engine):
    engine = virtual_engine(sample_rate=32_000, channels=2, period_frames=256)
    assert "virtual running" in repr(engine)
    assert engine.device_params == {
        "input_rate_hz": 32_000,
        "output_rate_hz": 32_000,
        "input_channels": 2,
        "output_channels": 2,
        "period_frames": 256,
    }
