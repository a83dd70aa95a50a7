"""LiveConversation end to end: virtual devices, the real google-genai SDK, the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav
from google.genai import types

import duplex
from duplex import _engine
from duplex.demo import speak
from duplex.live import LiveConfig, LiveConversation, LiveEvent, LiveSessionError
from duplex.video import ImageSource, VideoStreamer

RATE = 22_050


@pytest.fixture(scope="module")
def utterances() -> list[np.ndarray]:
    """Two spoken phrases at 22.05 kHz (espeak-ng, or a synthetic voice)."""
    return [speak("Hello there, can you hear me?", 0)[0], speak("Tell me more.", 1)[0]]


def mic_wav(path: Path, *parts: np.ndarray | float) -> Path:
    """A microphone WAV from phrases and pauses (floats are seconds of silence)."""
    pieces = [np.zeros(int(p * RATE), np.float32) if isinstance(p, (int, float)) else p for p in parts]
    pcm = np.clip(np.concatenate(pieces) * 32767, -32768, 32767).astype(np.int16)
    return write_wav(path, pcm, RATE)


async def converse(engine, client, config, *, until, timeout=25.0, video=None, conv_cls=LiveConversation):
    """Runs a conversation until `until(events)` is true; returns (conversation, events)."""
    conv = conv_cls(engine, client, config, video=video)
    events: list[LiveEvent] = []

    async def watch() -> None:
        async for ev in conv.events():
            events.append(ev)
            if until(events):
                conv.stop()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(conv.run(), timeout)
    finally:
        await asyncio.wait_for(watcher, 5)
    return conv, events


def kinds(events: list[LiveEvent]) -> list[str]:
    return [e.kind for e in events]


def test_audio_goes_out_at_real_time_pace_and_the_answer_is_played(emulator, utterances, tmp_path):
    mic = mic_wav(tmp_path / "mic.wav", 0.2, utterances[0], 2.0)
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=mic), prebuffer_ms=100).start()
    client = emulator.make_client()
    try:
        # The service streams faster than real time: wait until the answer has played.
        conv, events = asyncio.run(converse(
            engine, client, LiveConfig(stats_interval_s=0.05), until=lambda ev: "turn_complete" in kinds(ev)
            and ev[-1].kind == "stats" and ev[-1].data["playback_buffered_ms"] == 0))
        engine.stop()
    finally:
        engine.close()
    session = emulator.sessions[-1]
    chunks = session.audio_chunks
    # 16 kHz s16le in 20 ms chunks, never batched.
    assert {c.rate_hz for c in chunks} == {16_000}
    assert {c.nbytes for c in chunks} == {640}
    # Real-time pace: n chunks span about n x 20 ms of wall time, once the audio captured
    # while connecting (TLS, setup: up to ~1 s under load) has gone out at once.
    steady = chunks[60:]
    span = steady[-1].time - steady[0].time
    assert span == pytest.approx((len(steady) - 1) * 0.020, rel=0.1, abs=0.1)
    # What arrived is the microphone WAV at 16 kHz, from its first sample on: no lag, no
    # gap, the same loudness contour. (Sample values differ by the resampler chain's
    # sub-sample delay: 22.05k->48k->16k here against 22.05k->16k directly.)
    received = np.frombuffer(b"".join(c.pcm for c in chunks), "<i2").astype(np.float32) / 32768
    expected = _engine.resample(
        np.concatenate([np.zeros(int(0.2 * RATE), np.float32), utterances[0]]).astype(np.float32), RATE, 16_000)
    n = len(expected) // 160 * 160
    lag = int(np.argmax(np.correlate(received[:n], expected[:n], "full"))) - (n - 1)
    assert lag == 0
    env_received = np.sqrt(np.mean(received[:n].reshape(-1, 160) ** 2, axis=1))
    env_expected = np.sqrt(np.mean(expected[:n].reshape(-1, 160) ** 2, axis=1))
    assert np.max(np.abs(env_received - env_expected)) < 0.1 * np.max(env_expected) + 1e-3
    assert np.all(received[n + 3_200 : n + 16_000] == 0), "then the silence of the WAV"
    assert conv.chunks_sent == len(chunks)
    # The answer was played: the recording holds as much audio as the emulator sent.
    answer = session.answers[0]
    assert not answer.interrupted
    rec = engine.recording()[:, 0]
    loud = np.flatnonzero(np.abs(rec) > 1e-3)
    assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(answer.audio_total_s, abs=0.1)
    # Transcripts became events and the conversation transcript.
    assert "output_transcript" in kinds(events) and "input_transcript" in kinds(events)
    assert conv.transcript[-1] == ("model", answer.reply_text)
    assert conv.transcript[0][0] == "user"


def test_barge_in_flushes_within_a_period_and_the_next_answer_plays(emulator, utterances, tmp_path):
    mic = mic_wav(tmp_path / "mic.wav", 0.2, utterances[0], 1.2, utterances[1], 3.0)
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=mic), prebuffer_ms=100).start()
    marks: list[int] = []
    real_interrupt = engine.interrupt

    def spy_interrupt():
        report = real_interrupt()
        marks.append(engine.stats().frames_rendered)
        return report

    engine.interrupt = spy_interrupt  # type: ignore[method-assign]
    try:
        conv, events = asyncio.run(converse(
            engine, emulator.make_client(), LiveConfig(),
            until=lambda ev: kinds(ev).count("turn_complete") >= 2 and "interrupted" in kinds(ev)
            and ev[-1].kind == "turn_complete" and ev[-1].text != ""))
        engine.stop()
    finally:
        engine.close()
    session = emulator.sessions[-1]
    assert len(session.interruptions) == 1
    interrupted = [e for e in events if e.kind == "interrupted"][0]
    assert interrupted.data["heard_ms"] > 0
    assert interrupted.data["discarded_ms"] > 0
    assert interrupted.text and interrupted.data["full_text"].startswith(interrupted.text)
    # Silent from one period (10 ms) plus the fade (5 ms) after interrupt() on.
    rec = engine.recording()[:, 0]
    mark = marks[0]
    assert np.all(rec[mark + 480 + 240 : mark + 480 + 240 + 24_000] == 0.0)
    # The second answer played in full after the flush.
    second = session.answers[1]
    assert not second.interrupted
    loud = np.flatnonzero(np.abs(rec[mark + 24_000 :]) > 1e-3)
    assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(second.audio_total_s, abs=0.1)
    assert conv.transcript[-1] == ("model", second.reply_text)


def test_go_away_resumes_with_the_handle_and_loses_no_audio(emulator, utterances, tmp_path):
    mic = mic_wav(tmp_path / "mic.wav", 5.0)
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=mic)).start()
    config = LiveConfig(headers={"x-duplex-scenario": "go_away"})
    before = len(emulator.sessions)
    try:
        conv, events = asyncio.run(converse(
            engine, emulator.make_client(), config,
            until=lambda ev: kinds(ev).count("connected") >= 2 and ev[-1].kind == "stats"))
        sent = conv.chunks_sent
        stats = engine.stats()
        engine.stop()
    finally:
        engine.close()
    sessions = emulator.sessions[before:]
    assert len(sessions) >= 2
    assert "go_away" in kinds(events)
    first, second = sessions[0], sessions[1]
    assert second.resumed_with is not None and second.resumed_with in first.handles_issued
    assert first.closed_by == "client", "the client closed the old socket before the deadline"
    # Every chunk read from the microphone reached a session, in order, with no gap.
    received = sum(len(s.audio_chunks) for s in sessions)
    assert received == sent
    assert stats.capture_overflows == 0
    assert stats.chunks_read - sent <= 1  # at most the chunk in hand when stopping
    times = [c.time for s in sessions for c in s.audio_chunks]
    assert len(times) >= 0.9 * (times[-1] - times[0]) / 0.020


def test_close_1011_is_resumed(emulator, utterances, tmp_path):
    mic = mic_wav(tmp_path / "mic.wav", 0.2, utterances[1], 3.0, utterances[1], 3.0)
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=mic), prebuffer_ms=100).start()
    config = LiveConfig(headers={"x-duplex-scenario": "close_1011"})
    before = len(emulator.sessions)
    try:
        conv, events = asyncio.run(converse(
            engine, emulator.make_client(), config,
            until=lambda ev: kinds(ev).count("turn_complete") >= 2))
    finally:
        engine.close()
    sessions = emulator.sessions[before:]
    assert sessions[0].close_code == 1011
    reconnect = [e for e in events if e.kind == "reconnecting"][0]
    assert reconnect.data["code"] == 1011
    assert sessions[1].resumed_with in sessions[0].handles_issued
    assert len(sessions[1].answers) >= 1


def test_video_frames_and_media_resolution(emulator, tmp_path):
    import cv2

    image = tmp_path / "card.png"
    cv2.imwrite(str(image), np.full((1080, 1920, 3), 128, np.uint8))
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice()).start()
    config = LiveConfig(media_resolution="low")

    async def main():
        async with VideoStreamer(ImageSource(image), fps=1.0) as video:
            return await converse(engine, emulator.make_client(), config, video=video,
                                  until=lambda ev: kinds(ev).count("video") >= 4)

    try:
        conv, events = asyncio.run(main())
    finally:
        engine.close()
    session = emulator.sessions[-1]
    setup = session.setup
    assert setup["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert "contextWindowCompression" in setup, "compression is on whenever video is"
    frames = session.video_frames
    assert len(frames) >= 4
    assert all(f.valid and f.mime_type == "image/jpeg" for f in frames)
    assert all(max(f.width, f.height) <= 768 for f in frames)
    assert (frames[0].width, frames[0].height) == (768, 432)
    gaps = np.diff([f.time for f in frames])
    assert np.median(gaps) == pytest.approx(1.0, abs=0.15)
    # Audio kept flowing at its own pace while frames were sent.
    assert len(session.audio_chunks) > 100


class _WrongRateConversation(LiveConversation):
    """Sends 8 kHz audio, which the service refuses as invalid."""

    async def _send_audio(self, session, stop):
        await session.send_realtime_input(audio=types.Blob(data=bytes(320), mime_type="audio/pcm;rate=8000"))
        await stop.wait()


def test_malformed_frames_end_with_a_clear_error(emulator):
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice()).start()
    try:
        with pytest.raises(LiveSessionError) as info:
            asyncio.run(converse(engine, emulator.make_client(), LiveConfig(),
                                 until=lambda ev: False, conv_cls=_WrongRateConversation))
    finally:
        engine.close()
    assert info.value.code == 1007
    assert "closed with code 1007" in str(info.value)
    assert "rejected a message as invalid" in str(info.value)
