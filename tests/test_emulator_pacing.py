"""Pacing, bundling and usage of the emulator's answers, through the real google-genai SDK.

The service streams answers faster than real time and bundles several items per message;
so does the emulator by default, so that a client that does not flush on ``interrupted``,
or reads only ``parts[0]``, fails here as it would live.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from google.genai import types

from duplex.emulator import LiveEmulator, Scenario
from duplex.emulator.pacing import plan_answer

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
LONG = "please tell me a long story about seven friendly robots who sail around the world"


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sc(msg: Any, field: str) -> Any:
    """``msg.server_content.<field>`` or None."""
    return getattr(msg.server_content, field, None) if msg.server_content else None


async def turn(session: Any) -> list[tuple[float, Any]]:
    """Receives one turn (until turnComplete), with arrival times."""
    got = []
    while True:
        async for msg in session.receive():
            got.append((time.monotonic(), msg))
            if sc(msg, "turn_complete"):
                return got


def connect_config(scenario: str | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"response_modalities": ["AUDIO"], **extra}
    if scenario:
        config["http_options"] = {"headers": {"x-duplex-scenario": scenario}}
    return config


@pytest.mark.parametrize("scenario", [None, "realtime"])
def test_default_pacing_is_faster_than_real_time_and_realtime_keeps_the_old_pacing(scenario: str | None) -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=connect_config(scenario)) as s:
                await s.send_realtime_input(text=LONG)
                got = await turn(s)
            return emu.sessions[0], got

    record, got = run(main())
    answer = record.answers[0]
    total = answer.audio_total_s
    assert total > 3.0
    assert sum(len(m.data) for _, m in got if m.data) == round(total * 24_000) * 2
    # Send times as the emulator recorded them (the client's own arrival times add its parsing).
    audio = [e.time for e in record.events if "audio" in e.type.split("+")]
    t_first, t_last = audio[0], audio[-1]
    t_done = next(e.time for e in record.events if "turnComplete" in e.type)
    # Bounds that hold on a loaded machine (late sends only make spans longer).
    if scenario is None:  # 1 s at once, then 4x real time in bursts every 0.2 s
        assert (total - 1.0) / 4 - 0.1 < t_last - t_first < 0.5 * total
        gaps = np.diff(audio)
        assert np.sum(gaps > 0.15) >= 2 and np.median(gaps) < 0.01
    else:  # 0.5 s at once, then real time: never faster
        assert t_last - t_first > total - 0.5 - 0.15
    # Either way turnComplete waits until the answer would have played in real time.
    assert total - 0.1 < t_done - t_first < total + 1.0


@pytest.mark.parametrize("scenario", [None, "realtime"])
def test_a_client_that_does_not_flush_on_interrupted_would_play_seconds_of_stale_audio(scenario: str | None) -> None:
    """What a client has queued when ``interrupted`` comes: with the default pacing far more
    than a barge-in test tolerates (so forgetting to flush fails loudly), not ~0.5 s."""
    manual = {"automatic_activity_detection": {"disabled": True}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            config = connect_config(scenario, realtime_input_config=manual)
            async with emu.make_client().aio.live.connect(model=MODEL, config=config) as s:
                await s.send_realtime_input(text=LONG)
                got: list[tuple[float, Any]] = []
                first, barge = 0.0, None

                async def speak_up() -> None:  # the user barges in 0.6 s into the answer
                    await asyncio.sleep(0.6)
                    await s.send_realtime_input(activity_start=types.ActivityStart())

                async for msg in s.receive():
                    got.append((time.monotonic(), msg))
                    if msg.data and barge is None:
                        first, barge = time.monotonic(), asyncio.create_task(speak_up())
                    if sc(msg, "interrupted"):
                        break
                await barge
            return got, first

    got, first = run(main())
    t_int = next(t for t, m in got if sc(m, "interrupted"))
    received_s = sum(len(m.data) for _, m in got if m.data) / 2 / 24_000
    stale_s = received_s - (t_int - first)  # still queued at a client that plays from the first chunk on
    if scenario is None:
        assert stale_s > 1.5
    else:
        assert stale_s < 0.7


def test_bundled_messages_by_default_and_one_item_per_message_unbundled() -> None:
    config = {"output_audio_transcription": {}}

    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            client = emu.make_client()
            async with client.aio.live.connect(model=MODEL, config=connect_config(**config)) as s:
                await s.send_realtime_input(text="hello there")
                bundled = await turn(s)
            async with client.aio.live.connect(model=MODEL, config=connect_config("unbundled", **config)) as s:
                await s.send_realtime_input(text="hello there")
                single = await turn(s)
            return emu.sessions, bundled, single

    (first, _), bundled, single = run(main())
    total = round(first.answers[0].audio_total_s * 24_000) * 2
    turns = [m.server_content.model_turn for _, m in bundled if sc(m, "model_turn")]
    assert sum(len(p.inline_data.data) for t in turns for p in t.parts) == total
    assert max(len(t.parts) for t in turns) >= 2
    first_parts_only = sum(len(t.parts[0].inline_data.data) for t in turns)
    assert first_parts_only < 0.6 * total  # a client reading only parts[0] loses about half of the answer
    assert any(sc(m, "model_turn") and sc(m, "output_transcription") for _, m in bundled)
    done = bundled[-1][1]
    assert sc(done, "turn_complete") and done.usage_metadata is not None
    assert "audio+outputTranscription" in first.event_types()
    assert "turnComplete+usageMetadata" in first.event_types()
    # Unbundled: one part per message, transcription and usage on their own.
    assert all(len(m.server_content.model_turn.parts) == 1 for _, m in single if sc(m, "model_turn"))
    assert not any(sc(m, "model_turn") and sc(m, "output_transcription") for _, m in single)
    assert single[-1][1].usage_metadata is None and any(m.usage_metadata for _, m in single)


def test_usage_counts_grow_with_the_context() -> None:
    async def main() -> Any:
        async with LiveEmulator(scenario="fast") as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=connect_config()) as s:
                usage = []
                for text in ("hi", "how are you", "ok"):
                    await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=text)]))
                    got = await turn(s)
                    usage.append(next(m.usage_metadata for _, m in got if m.usage_metadata))
            return usage

    usage = run(main())
    prompts = [u.prompt_token_count for u in usage]
    assert prompts == sorted(prompts) and len(set(prompts)) == 3
    for before, after in zip(usage, usage[1:]):  # the previous prompt and answer are in the context now
        assert after.prompt_token_count > before.prompt_token_count + before.response_token_count
    assert all(u.total_token_count == u.prompt_token_count + u.response_token_count for u in usage)


def test_plan_answer_units() -> None:
    pcm = np.ones(24_000 * 2, np.int16)  # 2 s
    steps = plan_answer(pcm, "one two three four", Scenario(), transcribe=True)
    audio = [s for s in steps if s.chunk_bytes]
    assert sum(s.audio_s for s in audio) == pytest.approx(2.0)
    assert {len(s.chunk_bytes) for s in audio} == {2} and all(b == 1920 for s in audio for b in s.chunk_bytes)
    said = "".join(s.message["serverContent"].get("outputTranscription", {}).get("text", "") for s in steps)
    assert said == "one two three four"
    assert audio[0].offset_s == 0 and max(s.offset_s for s in audio) == pytest.approx(0.4, abs=0.01)
    slow = plan_answer(pcm, "x", Scenario().apply("realtime+unbundled"), transcribe=False)
    assert len(slow) == 50 and slow[-1].offset_s == pytest.approx(1.96 - 0.5)
    premature = plan_answer(pcm, "x", Scenario().apply("premature_turn_complete"), transcribe=False)
    assert sum(s.premature_turn_complete for s in premature) == 1
