"""Function calling in the emulator, through the real google-genai SDK.

``toolCall`` with ids, the wait for the matching ``toolResponse``, an answer that speaks
the result, ``toolCallCancellation`` on barge-in, NON_BLOCKING declarations and the
``scheduling`` of their responses, and 1007 for an id that was never issued.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from duplex.emulator import LiveEmulator, Scenario, ScenarioError
from duplex.emulator import protocol as proto
from duplex.emulator.tools import calls_named_in, describe_result, parse_tools

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
HALF_CASCADE = "gemini-live-2.5-flash-preview"


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def get_time(behavior: str | None = None) -> dict[str, Any]:
    """A declaration of ``get_time(tz)`` (SDK dict form)."""
    decl: dict[str, Any] = {"name": "get_time", "description": "the local time",
                            "parameters": {"type": "OBJECT", "properties": {"tz": {"type": "STRING"}}}}
    if behavior:
        decl["behavior"] = behavior
    return decl


def config(*decls: dict[str, Any], scenario: str = "fast", **extra: Any) -> dict[str, Any]:
    """A connect config with these function declarations and output transcription."""
    return {"response_modalities": ["AUDIO"], "output_audio_transcription": {},
            "tools": [{"function_declarations": list(decls)}],
            "http_options": {"headers": {"x-duplex-scenario": scenario}}, **extra}


def sc(msg: Any, field: str) -> Any:
    """``msg.server_content.<field>`` or None."""
    return getattr(msg.server_content, field, None) if msg.server_content else None


async def until(session: Any, stop: Any, got: list[Any] | None = None) -> list[Any]:
    """Receives (across turns) until ``stop(msg)``; returns every message, ``got`` extended."""
    got = [] if got is None else got
    while True:
        async for msg in session.receive():
            got.append(msg)
            if stop(msg):
                return got


def said(messages: list[Any]) -> str:
    """The model's output transcription over ``messages``."""
    return "".join(sc(m, "output_transcription").text for m in messages if sc(m, "output_transcription"))


async def ask(session: Any, text: str) -> None:
    """A client text turn."""
    await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=text)]))


def test_blocking_call_waits_for_the_response_then_speaks_the_result() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config(get_time("BLOCKING"))) as s:
                await ask(s, "what time is it? call get_time tz=UTC")
                got = await until(s, lambda m: m.tool_call is not None)
                # The model waits, silent, for the result.
                quiet: list[Any] = []
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(until(s, lambda m: False, quiet), 0.4)
                (call,) = got[-1].tool_call.function_calls
                await s.send_tool_response(function_responses=[
                    types.FunctionResponse(id=call.id, name=call.name, response={"time": "12:00"})])
                answer = await until(s, lambda m: bool(sc(m, "turn_complete")))
            return emu.sessions[0], call, quiet, answer

    record, call, quiet, answer = run(main())
    assert call.id and call.name == "get_time" and call.args == {"tz": "UTC"}
    assert not any(m.data for m in quiet) and not any(sc(m, "turn_complete") for m in quiet)
    assert sum(len(m.data) for m in answer if m.data) > 0
    assert said(answer) == "The get_time function says time 12:00."
    (made,) = record.tool_calls
    assert made.id == call.id and made.behavior == "BLOCKING" and made.responded_at is not None
    assert [a.trigger for a in record.answers] == ["tool_response"]
    assert record.answers[0].first_audio_at > made.responded_at


def test_unknown_id_closes_1007_with_the_service_wording() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            async with emu.make_client().aio.live.connect(model=MODEL, config=config(get_time())) as s:
                await ask(s, "get_time please")
                await until(s, lambda m: m.tool_call is not None)
                await s.send_tool_response(function_responses=[
                    types.FunctionResponse(id="fc-never-issued", name="get_time", response={"time": "1"})])
                with pytest.raises(genai_errors.APIError) as info:
                    await until(s, lambda m: False)
            return info.value, emu.sessions[0]

    err, record = run(main())
    assert (err.code, err.details) == (1007, "Request contains an invalid argument.")
    assert "fc-never-issued" in record.error_detail


def test_barge_in_during_a_pending_call_cancels_it_and_a_late_response_is_ignored() -> None:
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(3200) / 16_000)).astype(np.int16).tobytes()
    manual = {"automatic_activity_detection": {"disabled": True}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            cfg = config(get_time("BLOCKING"), realtime_input_config=manual)
            async with emu.make_client().aio.live.connect(model=MODEL, config=cfg) as s:
                await ask(s, "get_time")
                first = await until(s, lambda m: m.tool_call is not None)
                await s.send_realtime_input(activity_start=types.ActivityStart())  # the user speaks up
                cancelled = await until(s, lambda m: m.tool_call_cancellation is not None)
                call = first[-1].tool_call.function_calls[0]
                await s.send_tool_response(function_responses=[
                    types.FunctionResponse(id=call.id, name=call.name, response={"time": "late"})])
                await s.send_realtime_input(audio=types.Blob(data=tone, mime_type="audio/pcm;rate=16000"))
                await s.send_realtime_input(activity_end=types.ActivityEnd())
                after = await until(s, lambda m: bool(sc(m, "turn_complete")))
            return emu.sessions[0], call, cancelled, after

    record, call, cancelled, after = run(main())
    assert cancelled[-1].tool_call_cancellation.ids == [call.id]
    assert not any(sc(m, "interrupted") for m in cancelled)  # the model was silent: nothing to interrupt
    assert record.tool_calls[0].cancelled_at is not None
    assert [r.id for r in record.late_tool_responses] == [call.id]  # ignored, not a 1007
    assert "late" not in said(after) and said(after).startswith("You said something")


@pytest.mark.parametrize("scheduling", ["WHEN_IDLE", "INTERRUPT", "SILENT"])
def test_non_blocking_call_keeps_talking_and_the_response_is_scheduled(scheduling: str) -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            cfg = config(get_time("NON_BLOCKING"), scenario="speed=1,burst_s=0.2")
            async with emu.make_client().aio.live.connect(model=MODEL, config=cfg) as s:
                await ask(s, "get_time")
                got = await until(s, lambda m: bool(m.data))  # the filler starts while the call runs
                call = next(m for m in got if m.tool_call).tool_call.function_calls[0]
                await s.send_tool_response(function_responses=[types.FunctionResponse(
                    id=call.id, name=call.name, response={"time": "12:00"}, scheduling=scheduling)])
                got = await until(s, lambda m: bool(sc(m, "turn_complete")), got)
                if scheduling != "SILENT":
                    got = await until(s, lambda m: bool(sc(m, "turn_complete")), got)
                else:
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(until(s, lambda m: bool(m.data), got), 0.5)
            return emu.sessions[0], got

    record, got = run(main())
    filler, *rest = record.answers
    assert filler.reply_text == "Let me check with get_time." and filler.tool_call_ids == (record.tool_calls[0].id,)
    assert record.tool_calls[0].responded_at is not None
    if scheduling == "SILENT":
        assert rest == [] and "12:00" not in said(got)
        return
    (result,) = rest
    assert result.reply_text == "The get_time function says time 12:00."
    assert said(got).endswith(result.reply_text)
    if scheduling == "WHEN_IDLE":  # after the filler has been said in full
        assert not filler.interrupted and result.first_audio_at >= filler.turn_complete_at
        assert not any(sc(m, "interrupted") for m in got)
    else:  # INTERRUPT: the filler is cut, the result is said at once
        assert filler.interrupted and record.interruptions[0].cause == "tool_response"
        i = next(i for i, m in enumerate(got) if sc(m, "interrupted"))
        assert sc(got[i + 1], "turn_complete")


def test_barge_in_during_the_filler_cancels_the_non_blocking_call() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            cfg = config(get_time("NON_BLOCKING"), scenario="speed=1,burst_s=0.2")
            async with emu.make_client().aio.live.connect(model=MODEL, config=cfg) as s:
                await ask(s, "get_time")
                got = await until(s, lambda m: bool(m.data))
                await ask(s, "never mind")
                got = await until(s, lambda m: m.tool_call_cancellation is not None, got)
            return emu.sessions[0], got

    record, got = run(main())
    kinds = [k for m in got for k in ("interrupted", "cancel") if (sc(m, k) if k != "cancel" else m.tool_call_cancellation)]
    assert kinds == ["interrupted", "cancel"]
    assert got[-1].tool_call_cancellation.ids == [record.tool_calls[0].id]


def test_scenario_triggers_a_call_on_a_spoken_turn_once_and_default_behavior() -> None:
    tone = (3000 * np.sin(2 * np.pi * 300 * np.arange(4800) / 16_000)).astype(np.int16).tobytes()
    manual = {"automatic_activity_detection": {"disabled": True}}

    async def turn(s: Any) -> None:
        await s.send_realtime_input(activity_start=types.ActivityStart())
        await s.send_realtime_input(audio=types.Blob(data=tone, mime_type="audio/pcm;rate=16000"))
        await s.send_realtime_input(activity_end=types.ActivityEnd())

    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = emu.make_client()
            cfg = config(get_time(), scenario="fast,tool_call=*,tool_args=tz:Europe/Paris",
                         realtime_input_config=manual)
            async with client.aio.live.connect(model=HALF_CASCADE, config=cfg) as s:  # BLOCKING by default
                await turn(s)
                got = await until(s, lambda m: m.tool_call is not None)
                call = got[-1].tool_call.function_calls[0]
                await s.send_tool_response(function_responses=[
                    types.FunctionResponse(id=call.id, name=call.name, response={"output": "noon"})])
                got = await until(s, lambda m: bool(sc(m, "turn_complete")), got)
                await turn(s)  # tool_call_limit=1: the second turn is an ordinary one
                got = await until(s, lambda m: bool(sc(m, "turn_complete")), got)
            async with client.aio.live.connect(model=MODEL, config=cfg) as s:  # native audio: NON_BLOCKING
                await turn(s)
                await until(s, lambda m: m.tool_call is not None)
            return emu.sessions, got, call

    (half, native), got, call = run(main())
    assert call.name == "get_time" and call.args == {"tz": "Europe/Paris"}
    assert [a.reply_text for a in half.answers] == ["The get_time function says noon.",
                                                    "You said something for 0.3 seconds."]
    assert half.tool_calls[0].behavior == "BLOCKING" and native.tool_calls[0].behavior == "NON_BLOCKING"


def test_bad_tool_declarations_and_responses_close_1007() -> None:
    async def connect_with(decl: dict[str, Any]) -> Any:
        async with LiveEmulator() as emu:
            with pytest.raises(genai_errors.APIError) as info:
                async with emu.make_client().aio.live.connect(model=MODEL, config=config(decl)) as s:
                    await until(s, lambda m: False)
            return info.value

    err = run(connect_with({"name": "f", "behavior": "SOMETIMES"}))
    assert err.code == 1007 and "behavior" in err.details
    with pytest.raises(proto.ProtocolError, match="Unknown name"):
        parse_tools([{"function_declarations": [{"name": "f", "colour": "red"}]}])
    with pytest.raises(proto.ProtocolError, match="Invalid function name"):
        parse_tools([{"functionDeclarations": [{"name": "1abc"}]}])


def test_tool_helpers() -> None:
    tools = parse_tools([{"functionDeclarations": [get_time(), {"name": "lights_on"}]}, {"googleSearch": {}}],
                        "NON_BLOCKING")
    assert tools.builtin == ("googleSearch",) and tools.declarations["get_time"].parameters == ("tz",)
    assert calls_named_in("get_time tz=UTC n=3 and lights_on", tools) == [("get_time", {"tz": "UTC"}),
                                                                          ("lights_on", {})]
    assert calls_named_in("my_get_time", tools) == []
    assert describe_result({"time": "12:00", "n": 3}) == "time 12:00, n 3"
    assert Scenario().apply("tool_call=get_time,tool_args=a:1;b:x").tool_args == "a:1;b:x"
    with pytest.raises(ScenarioError):
        Scenario().apply("tool_args=nonsense")
    with pytest.raises(ScenarioError):
        Scenario().apply("tool_behavior_default=SOMETIMES")
