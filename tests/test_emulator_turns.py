"""Input transcription in fragments, client text turns, and late keepalive pongs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import numpy as np
import pytest
from google.genai import types
from websockets.asyncio.client import connect as ws_connect

from duplex.emulator import LiveEmulator

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
TONE = (3000 * np.sin(2 * np.pi * 300 * np.arange(4800) / 16_000)).astype(np.int16).tobytes()  # 0.3 s


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sc(msg: Any, field: str) -> Any:
    return getattr(msg.server_content, field, None) if msg.server_content else None


async def turn(session: Any) -> list[Any]:
    got = []
    while True:
        async for msg in session.receive():
            got.append(msg)
            if sc(msg, "turn_complete"):
                return got


def test_input_transcription_arrives_in_fragments_the_first_while_the_user_speaks() -> None:
    config = {"response_modalities": ["AUDIO"], "input_audio_transcription": {},
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True}},
              "http_options": {"headers": {"x-duplex-scenario": "fast"}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as s:
                await s.send_realtime_input(activity_start=types.ActivityStart())
                await s.send_realtime_input(audio=types.Blob(data=TONE, mime_type="audio/pcm;rate=16000"))
                during = None
                async for msg in s.receive():  # before activityEnd: the user is still speaking
                    during = msg
                    break
                await s.send_realtime_input(activity_end=types.ActivityEnd())
                return during, await turn(s)

    during, after = run(main())
    assert sc(during, "input_transcription").text == "[speech" and not sc(during, "input_transcription").finished
    rest = [sc(m, "input_transcription") for m in after if sc(m, "input_transcription")]
    assert [t.text for t in rest] == [" 0.3", " s]"] and rest[-1].finished
    assert "".join(t.text for t in [sc(during, "input_transcription"), *rest]) == "[speech 0.3 s]"


def test_text_turns_client_content_accumulates_until_turn_complete_and_blank_text_is_no_turn() -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config={"output_audio_transcription": {}}) as s:
                await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="first part")]),
                                            turn_complete=False)
                await s.send_realtime_input(text="   ")
                with pytest.raises(asyncio.TimeoutError):  # neither is answered
                    await asyncio.wait_for(turn(s), 0.4)
                await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="second")]))
                answered = await turn(s)
                await s.send_realtime_input(text="and realtime text")
                realtime = await turn(s)
            return emu.sessions[0], answered, realtime

    record, answered, realtime = run(main())
    said = "".join(sc(m, "output_transcription").text for m in answered if sc(m, "output_transcription"))
    assert said == "You wrote: first part second"
    assert [u.source for u in record.utterances] == ["client_content", "text"]
    assert sum(len(m.data) for m in realtime if m.data) > 0


@pytest.mark.parametrize("delay", [0.0, 0.6])
def test_keepalive_pongs_can_be_delayed(delay: float) -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario=f"pong_delay_s={delay}") as emu:
            url = emu.base_url.replace("https", "wss") + LIVE_PATH
            async with ws_connect(url, ssl=emu.ssl_context(), additional_headers={"x-goog-api-key": "k"},
                                  ping_interval=None) as ws:
                await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
                assert json.loads(await ws.recv()) == {"setupComplete": {}}
                t0 = time.monotonic()
                latency = await asyncio.wait_for(await ws.ping(), 5)
                return time.monotonic() - t0, latency

    elapsed, latency = run(main())
    if delay:
        assert delay <= elapsed < delay + 0.5
    else:
        assert elapsed < 0.3


@pytest.mark.parametrize("mode", ["with_next", "never"])
def test_the_turn_complete_of_a_cut_turn_can_come_late_or_never(mode: str) -> None:
    """Issue 9 item 1: audio after ``interrupted`` is the next answer, whenever (or whether)
    the cut turn's ``turnComplete`` comes; these scenarios let a client test prove it."""
    config = {"response_modalities": ["AUDIO"],
              "realtime_input_config": {"automatic_activity_detection": {"disabled": True}},
              "http_options": {"headers": {"x-duplex-scenario": f"interrupted_turn_complete={mode}"}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as s:
                await s.send_realtime_input(text="tell me about the sea")
                got = []
                async for msg in s.receive():
                    got.append(msg)
                    if msg.data:
                        break
                await s.send_realtime_input(activity_start=types.ActivityStart())
                await s.send_realtime_input(audio=types.Blob(data=TONE, mime_type="audio/pcm;rate=16000"))
                await s.send_realtime_input(activity_end=types.ActivityEnd())
                while sum(bool(sc(m, "turn_complete")) for m in got) < (2 if mode == "with_next" else 1):
                    async for msg in s.receive():
                        got.append(msg)
            return emu.sessions[0], got

    record, got = run(main())
    i = next(i for i, m in enumerate(got) if sc(m, "interrupted"))
    after = got[i + 1:]
    first_audio = next(m for m in after if m.data)
    completes = [m for m in after if sc(m, "turn_complete")]
    if mode == "with_next":  # turnComplete of the cut turn rides on the next answer's first audio
        assert completes[0] is first_audio and len(completes) == 2
        assert record.answers[0].turn_complete_at is not None
    else:  # only the next answer's own turnComplete
        assert len(completes) == 1 and completes[0] is not first_audio
        assert record.answers[0].turn_complete_at is None
    assert sum(len(m.data) for m in after if m.data) == round(record.answers[1].audio_total_s * 24_000) * 2
