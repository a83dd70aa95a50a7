"""duplex.emulator: the local Live API emulator, driven by the real google-genai SDK over TLS.

Every end-to-end test uses ``client.aio.live.connect`` of the unmodified SDK through
``LiveEmulator.make_client()`` (Recipe A of ``live_protocol.md``: per-run certificate,
``async_client_args={"ssl": ctx}``), is bounded by ``asyncio.wait_for`` and a pytest
timeout, and checks both what the client received and what the emulator recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import websockets
from google.genai import errors as genai_errors
from google.genai import types
from websockets.asyncio.client import connect as ws_connect

from duplex.emulator import LiveEmulator, Scenario, ScenarioError
from duplex.emulator import protocol as proto
from duplex.emulator.media import inspect_image, jpeg_size_from_header
from duplex.vad import EnergyVad, VadConfig
from duplex.emulator.voice import Voice, parse_wav, resample_int16, synthetic_voice

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
HALF_CASCADE = "gemini-live-2.5-flash-preview"  # can answer in TEXT
PCM16 = "audio/pcm;rate=16000"
CHUNK = 320  # 20 ms at 16 kHz
LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def speech16k() -> np.ndarray:
    """A short spoken phrase (espeak-ng) as 16 kHz int16, leading/trailing silence trimmed."""
    espeak = shutil.which("espeak-ng")
    if espeak:
        wav = subprocess.run([espeak, "--stdout", "-s", "190", "Hello, can you hear me?"],
                             capture_output=True, check=True, timeout=20).stdout
        pcm, rate = parse_wav(wav)
    else:
        pcm, rate = synthetic_voice("Hello, can you hear me?"), 24_000
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return resample_int16(pcm[loud[0] : loud[-1] + 1], rate, 16_000)


def silence(seconds: float) -> np.ndarray:
    """Digital silence at 16 kHz."""
    return np.zeros(int(16_000 * seconds), dtype=np.int16)


async def stream_pcm(session: Any, pcm: np.ndarray, realtime: bool = True) -> None:
    """Sends ``pcm`` in 20 ms chunks, at real-time pace when ``realtime``."""
    t0 = time.monotonic()
    for i in range(0, pcm.size, CHUNK):
        await session.send_realtime_input(audio=types.Blob(data=pcm[i : i + CHUNK].tobytes(), mime_type=PCM16))
        if realtime:
            await asyncio.sleep(max(0.0, t0 + (i + CHUNK) / 16_000 - time.monotonic()))


async def collect(session: Any, until: Callable[[Any], bool]) -> list[tuple[float, Any]]:
    """Receives across ``receive()`` calls (each ends at turnComplete) until ``until(msg)``."""
    got: list[tuple[float, Any]] = []
    while True:
        async for msg in session.receive():
            got.append((time.monotonic(), msg))
            if until(msg):
                return got


def sc(msg: Any, field: str) -> Any:
    """``msg.server_content.<field>`` or None."""
    return getattr(msg.server_content, field, None) if msg.server_content else None


async def wait_closed(emu: LiveEmulator, index: int = 0, timeout: float = 5.0) -> Any:
    """The session record ``index`` once its connection has ended (the emulator runs on this loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = emu.sessions
        if len(sessions) > index and sessions[index].closed:
            return sessions[index]
        await asyncio.sleep(0.01)
    raise TimeoutError("session did not close")


# ---------------------------------------------------------------------------------------
# Handshake, audio and video input


def test_setup_complete_handshake_and_recorded_setup() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            assert emu.base_url.startswith("https://127.0.0.1:") and emu.cert_path.exists()
            config = {"response_modalities": ["AUDIO"], "media_resolution": types.MediaResolution.MEDIA_RESOLUTION_LOW,
                      "realtime_input_config": {"automatic_activity_detection": {"silence_duration_ms": 300}}}
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                assert session.setup_complete is not None
            record = await wait_closed(emu)
            return record, emu.cert_path

    record, cert = run(main())
    assert record.path == LIVE_PATH
    assert record.headers["x-goog-api-key"] == "<set>"
    assert record.setup["model"] == f"models/{MODEL}"
    assert record.setup["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"
    assert record.setup["realtimeInputConfig"]["automatic_activity_detection"]["silence_duration_ms"] == 300
    assert record.event_types() == ["setupComplete"]  # exactly one, nothing else without resumption
    assert (record.close_code, record.closed_by) == (1000, "client")
    assert not cert.exists()  # the per-run certificate is deleted on stop


def test_audio_chunks_recorded_with_size_and_rate() -> None:
    tone = (1000 * np.sin(2 * np.pi * 440 * np.arange(10 * CHUNK) / 16_000)).astype(np.int16)  # -30 dBFS

    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                await stream_pcm(session, tone, realtime=False)
                await session.send_realtime_input(media=types.Blob(data=tone[:CHUNK].tobytes(), mime_type=PCM16))
            return await wait_closed(emu)

    record = run(main())
    chunks = record.audio_chunks
    assert len(chunks) == 11
    assert all(c.nbytes == 640 and c.samples == 320 and c.rate_hz == 16_000 for c in chunks)
    assert [c.time for c in chunks] == sorted(c.time for c in chunks)
    assert [k for _, k in record.client_messages] == ["setup"] + ["audio"] * 10 + ["mediaChunks"]
    assert record.utterances == ()  # 200 ms of tone: speech starts, but it never ends


def test_video_jpeg_frames_counted_with_size() -> None:
    cv2 = pytest.importorskip("cv2")
    image = np.zeros((480, 640, 3), np.uint8)
    image[100:200, 100:300] = (0, 128, 255)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    jpeg = jpeg.tobytes()

    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                for _ in range(3):
                    await session.send_realtime_input(video=types.Blob(data=jpeg, mime_type="image/jpeg"))
                await session.send_realtime_input(media=types.Blob(data=jpeg, mime_type="image/jpeg"))
                await session.send_realtime_input(video=types.Blob(data=b"\xff\xd8 not a jpeg", mime_type="image/jpeg"))
            return await wait_closed(emu)

    frames = run(main()).video_frames
    assert len(frames) == 5
    assert all((f.width, f.height, f.nbytes, f.valid) == (640, 480, len(jpeg), True) for f in frames[:4])
    assert not frames[4].valid and frames[4].error


# ---------------------------------------------------------------------------------------
# Speech in, speech out, barge-in


def test_spoken_utterance_gets_a_spoken_answer(speech16k: np.ndarray) -> None:
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}, "input_audio_transcription": {}}

    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                await stream_pcm(session, np.concatenate([speech16k, silence(0.8)]))
                speech_end = time.monotonic() - 0.8
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
            return emu.sessions[0], got, speech_end

    record, got, speech_end = run(main())
    parts = [p for _, m in got if sc(m, "model_turn") for p in m.server_content.model_turn.parts]
    assert parts and all(p.inline_data.mime_type == "audio/pcm;rate=24000" for p in parts)
    pcm = b"".join(p.inline_data.data for p in parts)
    answer = record.answers[0]
    assert len(pcm) == round(answer.audio_total_s * 24_000) * 2 and answer.audio_total_s > 1.0
    assert all(len(p.inline_data.data) <= 1920 for p in parts)  # 40 ms chunks
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 1000  # audible speech, not silence
    said = "".join(sc(m, "output_transcription").text for _, m in got if sc(m, "output_transcription"))
    assert said == answer.reply_text
    fragments = [sc(m, "input_transcription") for _, m in got if sc(m, "input_transcription")]
    heard = ["".join(f.text for f in fragments)]  # in fragments, as the service sends them
    assert len(fragments) == 3 and [bool(f.finished) for f in fragments] == [False, False, True]
    seconds = len(speech16k) / 16_000
    assert heard == [f"[speech {record.utterances[0].speech_s:.1f} s]"]
    assert abs(record.utterances[0].speech_s - seconds) < 0.15
    kinds = [k for _, m in got for k in ("generation_complete", "turn_complete") if sc(m, k)]
    assert kinds == ["generation_complete", "turn_complete"]
    first_audio = next(t for t, m in got if m.data)
    # End of speech + 500 ms VAD hangover + synthesis; the emulator's own share is small.
    assert first_audio - speech_end < 1.5
    assert answer.latency_s is not None and answer.latency_s < 0.5


def test_barge_in_interrupts_the_answer(speech16k: np.ndarray) -> None:
    utterance = np.concatenate([speech16k, silence(0.7)])
    headers = {"headers": {"x-duplex-scenario": "speed=2"}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            config = {"response_modalities": ["AUDIO"], "http_options": headers}
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                first_audio = asyncio.Event()
                barge: dict[str, float] = {}

                async def sender() -> None:
                    await stream_pcm(session, utterance)
                    await first_audio.wait()
                    barge["t"] = time.monotonic()
                    await stream_pcm(session, utterance)

                task = asyncio.create_task(sender())
                got: list[tuple[float, Any]] = []
                turns_done = 0
                while turns_done < 2:  # the interrupted turn, then the answer to the barge-in
                    async for msg in session.receive():
                        got.append((time.monotonic(), msg))
                        if msg.data:
                            first_audio.set()
                        if sc(msg, "turn_complete"):
                            turns_done += 1
                await task
            return emu.sessions[0], got, barge["t"]

    record, got, barge_t = run(main(), timeout=30)
    flags = [k for _, m in got for k in ("interrupted", "generation_complete", "turn_complete") if sc(m, k)]
    assert flags == ["interrupted", "turn_complete", "generation_complete", "turn_complete"]
    t_int = next(t for t, m in got if sc(m, "interrupted"))
    # No audio of the cut answer after `interrupted` (until its turnComplete).
    i_int = next(i for i, (_, m) in enumerate(got) if sc(m, "interrupted"))
    assert not got[i_int + 1][1].data and sc(got[i_int + 1][1], "turn_complete")
    # 100 ms of speech confirms the start; the interruption follows within a VAD frame or so.
    assert 0.09 < t_int - barge_t < 0.35
    (cut,) = record.interruptions
    assert cut.cause == "vad" and cut.latency_s < 0.03 and cut.turn_index == 0
    assert 0 < cut.audio_sent_s < record.answers[0].audio_total_s
    assert [a.interrupted for a in record.answers] == [True, False]
    assert len(record.utterances) == 2


def test_manual_activity_detection_turns() -> None:
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16_000)).astype(np.int16)
    config = {"response_modalities": ["AUDIO"], "input_audio_transcription": {},
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True}}}

    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(activity_start=types.ActivityStart())
                await stream_pcm(session, tone, realtime=False)
                await session.send_realtime_input(activity_end=types.ActivityEnd())
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
            return emu.sessions[0], got

    record, got = run(main())
    assert "".join(sc(m, "input_transcription").text for _, m in got if sc(m, "input_transcription")) == "[speech 0.5 s]"
    assert sum(len(m.data) for _, m in got if m.data) > 0
    assert record.utterances[0].source == "manual"


def test_no_interruption_queues_the_next_answer() -> None:
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(3200) / 16_000)).astype(np.int16)
    config = {"response_modalities": ["AUDIO"],
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True},
                                        "activity_handling": "NO_INTERRUPTION"},
              "http_options": {"headers": {"x-duplex-scenario": "speed=3"}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                for _ in range(2):  # the second turn arrives while the first answer is still streaming
                    await session.send_realtime_input(activity_start=types.ActivityStart())
                    await stream_pcm(session, tone, realtime=False)
                    await session.send_realtime_input(activity_end=types.ActivityEnd())
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
                got += await collect(session, lambda m: bool(sc(m, "turn_complete")))
            return emu.sessions[0], got

    record, got = run(main())
    assert not any(sc(m, "interrupted") for _, m in got)
    assert [a.interrupted for a in record.answers] == [False, False]
    assert record.answers[1].first_audio_at > record.answers[0].turn_complete_at


def test_audio_stream_end_flushes_speech_and_text_modality() -> None:
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(4800) / 16_000)).astype(np.int16)

    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            client = emu.make_client()
            async with client.aio.live.connect(model=MODEL, config={"input_audio_transcription": {}}) as session:
                await stream_pcm(session, tone, realtime=False)  # no trailing silence
                await session.send_realtime_input(audio_stream_end=True)
                audio = await collect(session, lambda m: bool(sc(m, "turn_complete")))
            async with client.aio.live.connect(model=HALF_CASCADE, config={"response_modalities": ["TEXT"]}) as session:
                await session.send_realtime_input(text="ping")
                text = await collect(session, lambda m: bool(sc(m, "turn_complete")))
            return audio, text

    audio, text = run(main())
    assert "".join(sc(m, "input_transcription").text for _, m in audio if sc(m, "input_transcription")) == "[speech 0.3 s]"
    assert sum(len(m.data) for _, m in audio if m.data) > 0
    assert "".join(m.text for _, m in text if m.text) == "You wrote: ping"


# ---------------------------------------------------------------------------------------
# Errors: close 1007 for malformed input


BAD_SDK_INPUTS = {
    "wrong rate": dict(audio=types.Blob(data=b"\0\0" * 160, mime_type="audio/pcm;rate=8000")),
    "wrong audio type": dict(audio=types.Blob(data=b"\0\0" * 160, mime_type="audio/wav")),
    "odd byte count": dict(audio=types.Blob(data=b"\0\0\0", mime_type=PCM16)),
    "activityStart with automatic VAD": dict(activity_start=types.ActivityStart()),
}


@pytest.mark.parametrize("name", list(BAD_SDK_INPUTS))
def test_malformed_input_closes_1007_and_the_sdk_raises_api_error(name: str) -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                await session.send_realtime_input(**BAD_SDK_INPUTS[name])
                with pytest.raises(genai_errors.APIError) as info:
                    await collect(session, lambda m: False)
            return info.value, await wait_closed(emu)

    err, record = run(main())
    assert err.code == 1007 and err.details == record.close_reason
    assert (record.close_code, record.closed_by) == (1007, "server")
    assert 0 < len(record.close_reason.encode()) <= 123


RAW_BAD_FRAMES = {
    "not JSON": "{not json",
    "turnComplete inside realtimeInput": '{"realtimeInput": {"turnComplete": true}}',
    "bad base64": '{"realtime_input": {"audio": {"data": "AA$A", "mime_type": "audio/pcm;rate=16000"}}}',
    "unknown top-level key": '{"hello": {}}',
    "second setup": '{"setup": {"model": "models/x"}}',
    "activityEnd without start": '{"realtimeInput": {"activityEnd": {}}}',
}


@pytest.mark.parametrize("name", list(RAW_BAD_FRAMES))
def test_raw_malformed_frames_close_1007(name: str) -> None:
    setup = {"setup": {"model": f"models/{MODEL}",
                       "realtime_input_config": {"automaticActivityDetection": {"disabled": True}}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            url = emu.base_url.replace("https", "wss") + "/" + LIVE_PATH  # "//ws/..." is tolerated
            async with ws_connect(url, ssl=emu.ssl_context(), additional_headers={"x-goog-api-key": "k"}) as ws:
                await ws.send(json.dumps(setup))
                assert json.loads(await ws.recv()) == {"setupComplete": {}}
                await ws.send(RAW_BAD_FRAMES[name])
                with pytest.raises(websockets.ConnectionClosedError) as info:
                    await ws.recv()
            return info.value.rcvd

    frame = run(main())
    assert frame.code == 1007 and frame.reason


def test_handshake_rejections() -> None:
    async def main() -> list[int]:
        async with LiveEmulator() as emu:
            base = emu.base_url.replace("https", "wss")
            statuses = []
            for path, headers in [("/ws/wrong.path", {"x-goog-api-key": "k"}), (LIVE_PATH, {}),
                                  (LIVE_PATH, {"x-goog-api-key": "k", "x-duplex-scenario": "nonsense"})]:
                with pytest.raises(websockets.InvalidStatus) as info:
                    async with ws_connect(base + path, ssl=emu.ssl_context(), additional_headers=headers):
                        pass
                statuses.append(info.value.response.status_code)
            async with ws_connect(base + LIVE_PATH + "?key=secret-abc", ssl=emu.ssl_context()) as ws:  # key in query
                await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
                assert json.loads(await ws.recv()) == {"setupComplete": {}}
            return statuses, emu.sessions[-1]

    statuses, record = run(main())
    assert statuses == [404, 403, 400]
    assert record.path == LIVE_PATH + "?key=<set>"  # the key never reaches the records
    assert "secret-abc" not in repr(record.summary()) + repr(record.headers)


# ---------------------------------------------------------------------------------------
# Sessions: goAway, resumption, scripted failures and pacing


def test_go_away_then_resume_with_handle() -> None:
    scenario = "fast+go_away,connection_lifetime_s=1.5,go_away_lead_s=0.7"
    config = {"response_modalities": ["AUDIO"], "session_resumption": {},
              "http_options": {"headers": {"x-duplex-scenario": scenario}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = emu.make_client()
            handles: list[str] = []

            def watch(m: Any) -> bool:
                u = m.session_resumption_update
                if u and u.resumable:
                    handles.append(u.new_handle)
                return m.go_away is not None

            async with client.aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(text="hi")
                got = await collect(session, watch)
                go_away_at = got[-1][0]
                with pytest.raises(genai_errors.APIError) as info:
                    await collect(session, lambda m: False)
                closed_after = time.monotonic() - go_away_at
            resume = {"response_modalities": ["AUDIO"], "session_resumption": {"handle": handles[-1]}}
            async with client.aio.live.connect(model=MODEL, config=resume) as session:
                await session.send_realtime_input(text="again")
                await collect(session, lambda m: bool(sc(m, "turn_complete")))
            with pytest.raises(genai_errors.APIError) as bad:
                async with client.aio.live.connect(model=MODEL, config={"session_resumption": {"handle": "nope"}}):
                    pass
            await wait_closed(emu, 2)
            return emu.sessions, got, info.value, closed_after, handles, bad.value

    sessions, got, err, closed_after, handles, bad = run(main())
    assert got[-1][1].go_away.time_left == "0.700s"
    assert (err.code, err.details) == (1011, "Deadline expired before operation could complete.")
    assert 0.5 < closed_after < 1.0
    first, second, refused = sessions
    assert first.handles_issued[-1] == handles[-1] and len(handles) >= 2  # idle after setup and after the turn
    assert second.resumed_with == handles[-1] and second.state_id == first.state_id
    assert second.turn_index_at_start == 1 and second.answers[0].turn_index == 1
    assert bad.code == 1007 and refused.close_code == 1007


def test_resumption_updates_not_resumable_while_generating() -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            config = {"response_modalities": ["AUDIO"], "session_resumption": {}}
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(text="hello")
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
                got += await collect(session, lambda m: m.session_resumption_update is not None)
            return got

    got = run(main())
    updates = [(m.session_resumption_update.resumable, m.session_resumption_update.new_handle)
               for _, m in got if m.session_resumption_update]
    assert updates[0][0] and updates[0][1]
    assert updates[1] == (False, None) or updates[1] == (False, "")
    assert updates[-1][0] and updates[-1][1] not in (None, "", updates[0][1])


def test_close_1011_after_first_answer_and_after_seconds() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = emu.make_client()
            config = {"http_options": {"headers": {"x-duplex-scenario": "fast+close_1011"}}}
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(text="hi")
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
                with pytest.raises(genai_errors.APIError) as after_answer:
                    await collect(session, lambda m: False)
            config = {"http_options": {"headers": {"x-duplex-scenario": "close_1011,close_after_s=0.3"}}}
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                t0 = time.monotonic()
                with pytest.raises(genai_errors.APIError) as timed:
                    await collect(session, lambda m: False)
                elapsed = time.monotonic() - t0
            return got, after_answer.value, timed.value, elapsed

    got, after_answer, timed, elapsed = run(main())
    assert any(m.data for _, m in got)
    assert (after_answer.code, after_answer.details) == (1011, "Internal error encountered.")
    assert timed.code == 1011 and 0.2 < elapsed < 1.0


def test_premature_turn_complete_then_rest_of_audio() -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario="fast+premature_turn_complete") as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                await session.send_realtime_input(text="hello")
                first = await collect(session, lambda m: bool(sc(m, "turn_complete")))
                rest = await collect(session, lambda m: bool(sc(m, "generation_complete")))
            return emu.sessions[0].answers[0], first, rest

    answer, first, rest = run(main())
    a, b = sum(len(m.data) for _, m in first if m.data), sum(len(m.data) for _, m in rest if m.data)
    assert a > 0 and b > 0 and a + b == round(answer.audio_total_s * 24_000) * 2
    assert answer.premature_turn_complete


@pytest.mark.parametrize("scenario", ["bursty", "slow"])
def test_pacing_scenarios(scenario: str) -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario=scenario) as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                await session.send_realtime_input(text="ok")
                await collect(session, lambda m: bool(sc(m, "generation_complete")))
            return emu.sessions[0]

    record = run(main())
    times = np.array([e.time for e in record.events if e.type == "audio"])
    total = record.answers[0].audio_total_s
    if scenario == "bursty":  # bursts of several chunks at once, separated by ~0.6 s gaps
        gaps = np.diff(times)
        assert gaps.max() > 0.45 and np.sum(gaps > 0.45) >= 1 and np.sum(gaps < 0.01) > len(gaps) / 2
    else:  # no initial burst, 0.8x real time
        assert times[-1] - times[0] == pytest.approx((total - 0.04) / 0.8, abs=0.12)


# ---------------------------------------------------------------------------------------
# Sync wrapper and command line


def test_emulator_thread_serves_sync_code() -> None:
    with LiveEmulator(scenario="fast").run_in_thread() as emu:
        async def talk() -> int:
            async with emu.make_client().aio.live.connect(model=MODEL, config={}) as session:
                await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
                got = await collect(session, lambda m: bool(sc(m, "turn_complete")))
                return sum(len(m.data) for _, m in got if m.data)

        assert run(talk()) > 0
        (record,) = emu.wait_for_sessions(1)
        assert record.utterances[0].source == "client_content" and record.utterances[0].text == "hi"
    assert not emu.running


def test_cli_serves_another_process_via_environment() -> None:
    server = subprocess.Popen([sys.executable, "-m", "duplex.emulator", "--quiet", "--scenario", "fast"],
                              stdout=subprocess.PIPE, text=True)
    try:
        info: dict[str, str] = {}
        deadline = time.monotonic() + 20
        while "cert" not in info and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, "emulator exited early"
            if line.strip().startswith("base URL"):
                info["url"] = line.split()[-1]
            if line.strip().startswith("certificate"):
                info["cert"] = line.split()[1]
        client_code = (
            "import asyncio\nfrom google import genai\n"
            "async def main():\n"
            "    c = genai.Client()\n"  # base URL, key and trusted certificate from the environment
            f"    async with c.aio.live.connect(model='{MODEL}', config={{}}) as s:\n"
            "        await s.send_realtime_input(text='hi')\n"
            "        n = 0\n"
            "        async for m in s.receive():\n"
            "            n += len(m.data or b'')\n"
            "        print(n)\n"
            "asyncio.run(asyncio.wait_for(main(), 20))\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        env.update(GOOGLE_GEMINI_BASE_URL=info["url"], SSL_CERT_FILE=info["cert"], GOOGLE_API_KEY="emulator")
        out = subprocess.run([sys.executable, "-c", client_code], env=env, capture_output=True, text=True,
                             timeout=40)
        assert out.returncode == 0, out.stderr[-2000:]
        assert int(out.stdout.split()[-1]) > 0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
        server.stdout.close()
    assert server.returncode == 0
    assert not Path(info["cert"]).exists()


# ---------------------------------------------------------------------------------------
# Units: parsing, VAD, images, scenarios


def test_protocol_accepts_both_spellings_and_base64_alphabets() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF, 0x00])
    for data in ("-_-_AA==", "+/+/AA==", "-_-_AA", "+/+/AA"):
        for body in ({"audio": {"data": data, "mime_type": PCM16}}, {"audio": {"data": data, "mimeType": PCM16}}):
            ((kind, blob),) = proto.parse_realtime_input(body)
            assert kind == "audio" and blob.data == raw and blob.params == {"rate": "16000"}
    assert proto.parse_client_frame('{"realtime_input": {}}')[0] == "realtimeInput"
    setup = proto.parse_setup({"model": "m", "generation_config": {"response_modalities": ["TEXT"]},
                               "realtimeInputConfig": {"automatic_activity_detection": {"disabled": True},
                                                       "activityHandling": "NO_INTERRUPTION"},
                               "session_resumption": {"handle": "h"}})
    assert setup.response_modalities == ("TEXT",) and not setup.vad.automatic and not setup.vad.barge_in
    assert setup.resumption_handle == "h"
    for bad in ("AA\nAA", "A", "AA$A"):
        with pytest.raises(proto.ProtocolError):
            proto.decode_base64(bad, "x")
    with pytest.raises(proto.ProtocolError):
        proto.get_field({"mimeType": "a", "mime_type": "b"}, "mimeType", "x")
    assert [proto.format_duration(s) for s in (10, 1.5, 0.0001)] == ["10s", "1.500s", "0.000100s"]
    assert len(proto.truncate_reason("é" * 100).encode()) <= 123
    with pytest.raises(ValueError):
        proto.encode_server_message({"error": {}})


def test_energy_vad_boundaries() -> None:
    vad = EnergyVad(VadConfig(start_ms=100, end_ms=500))
    loud = (3000 * np.sin(2 * np.pi * 200 * np.arange(16_000) / 16_000)).astype(np.int16)
    quiet = (50 * np.random.default_rng(0).standard_normal(16_000)).astype(np.int16)  # about -56 dBFS
    signal_ = np.concatenate([quiet[:8000], loud, quiet])
    events = [e for i in range(0, signal_.size, 512) for e in vad.feed(signal_[i : i + 512])]
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert start.position == 8000 and start.confirmed_at == 8000 + 1600
    assert end.position == 24000 and end.confirmed_at == 24000 + 8000


def test_jpeg_header_parser_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    ok, jpeg = cv2.imencode(".jpg", np.full((37, 53, 3), 90, np.uint8))
    assert ok and jpeg_size_from_header(jpeg.tobytes()) == (53, 37)
    assert inspect_image(jpeg.tobytes(), "image/jpeg").valid
    ok, png = cv2.imencode(".png", np.zeros((5, 7), np.uint8))
    assert (inspect_image(png.tobytes(), "image/png").width, inspect_image(png.tobytes(), "image/png").height) == (7, 5)
    with pytest.raises(ValueError):
        jpeg_size_from_header(b"GIF89a....")


def test_scenarios_compose_and_reject_unknown_names() -> None:
    s = Scenario().apply("bursty+premature_turn_complete,speed=2,close_after_s=none")
    assert s.names == ("bursty", "premature_turn_complete") and s.speed == 2.0 and s.bursty_period_s == 0.6
    assert s.premature_turn_complete_fraction == 0.5 and s.close_after_s is None
    assert Scenario(burst_s=0.5, speed=1).send_offset_s(1.5) == pytest.approx(1.0)
    # A quoted value keeps its spaces, commas and plus signs (a sentence for the voice).
    said = Scenario().apply("""slow+reply_template="Sunny, mild + dry all weekend.",speed=3""")
    assert said.reply_template == "Sunny, mild + dry all weekend." and said.speed == 3.0
    assert said.names == ("slow",)
    assert Scenario().apply("text_reply_template='You wrote {text}'").text_reply_template == "You wrote {text}"
    # A template that cannot be filled is refused up front, not at every answer.
    for template in ('reply_template="Done.}"', 'reply_template="{minutes}"', 'tool_filler_template="{0}"'):
        with pytest.raises(ScenarioError, match="cannot be filled"):
            Scenario().apply(template)
    assert Scenario().apply('reply_template="{{literal}} {seconds:.0f} s"').reply_template == "{{literal}} {seconds:.0f} s"
    for bad in ("nope", "speed=fast", "speed=0", "colour=red", 'reply_template="unclosed, quote'):
        with pytest.raises(ScenarioError):
            Scenario().apply(bad)


def test_synthetic_voice_without_espeak() -> None:
    spoken = Voice(use_espeak=False).speak("one two three four")
    assert spoken.engine == "synthetic" and 1.0 < spoken.duration_s < 2.0
    assert np.abs(spoken.pcm).max() > 5000
