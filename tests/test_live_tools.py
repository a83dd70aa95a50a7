"""Function calling: declarations from Python callables, calls run off the loop, responses
with matching ids, errors as responses, NON_BLOCKING scheduling, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

import pytest
from google.genai import types
from live_fake import flag
from test_live_client import converse, kinds

from duplex.emulator import LiveEmulator
from duplex.live import LiveConfig, LiveConversation, function_tool, local_time
from duplex.live.tools import ToolSet, declaration_of


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1) -> dict:
    """The weather forecast for a city.

    Args:
        city: the city's name, e.g. "Paris".
        unit: temperature unit.
        days: how many days ahead,
            counting today.
    """
    return {"city": city, "unit": unit, "days": days, "forecast": "sunny"}


def test_declaration_from_signature_hints_and_docstring():
    decl = declaration_of(get_weather)
    assert decl.name == "get_weather"
    assert decl.description.startswith("The weather forecast for a city.")
    props = decl.parameters.properties
    assert props["city"].type == types.Type.STRING and props["city"].description == 'the city\'s name, e.g. "Paris".'
    assert props["unit"].enum == ["celsius", "fahrenheit"]
    assert props["days"].type == types.Type.INTEGER
    assert props["days"].description == "how many days ahead, counting today."
    assert decl.parameters.required == ["city"]


def test_toolset_declares_functions_search_and_explicit_declarations():
    explicit = types.FunctionDeclaration(name="lookup", description="Look a word up.",
                                         parameters=types.Schema(type="OBJECT", properties={
                                             "word": types.Schema(type="STRING")}))
    tools = ToolSet([get_weather, function_tool(lambda word: word.upper(), declaration=explicit,
                                                behavior="NON_BLOCKING", scheduling="SILENT"), "google_search"])
    declared = tools.declarations()
    functions = declared[0].function_declarations
    assert [f.name for f in functions] == ["get_weather", "lookup"]
    assert functions[1].behavior == types.Behavior.NON_BLOCKING
    assert declared[1].google_search is not None
    with pytest.raises(ValueError, match="two tools"):
        ToolSet([get_weather, get_weather])
    with pytest.raises(TypeError, match="no implementation"):
        ToolSet([explicit])
    with pytest.raises(ValueError, match="scheduling"):
        function_tool(get_weather, scheduling="SOMETIMES")


def test_calls_run_and_answer_with_matching_ids(virtual_engine):
    engine = virtual_engine()
    loop_thread: list[int] = []
    ran_on: dict[str, int] = {}

    def slow_sync(seconds: float) -> str:
        """Sleeps (a blocking call: must not run on the event loop)."""
        ran_on["slow_sync"] = threading.get_ident()
        time.sleep(seconds)
        return "slept"

    async def async_add(a: int, b: int) -> int:
        """Adds two numbers."""
        ran_on["async_add"] = threading.get_ident()
        await asyncio.sleep(0.01)
        return a + b

    def broken() -> None:
        """Always fails."""
        raise RuntimeError("the sensor is unplugged")

    async def script(c):
        setup = await c.accept_setup()
        names = [f["name"] for f in setup["tools"][0]["functionDeclarations"]]
        assert names == ["slow_sync", "async_add", "broken"]
        await c.send({"toolCall": {"functionCalls": [
            {"id": "fc-1", "name": "slow_sync", "args": {"seconds": 0.3}},
            {"id": "fc-2", "name": "async_add", "args": {"a": 2, "b": 3}},
            {"id": "fc-3", "name": "broken", "args": {}},
            {"id": "fc-4", "name": "nobody", "args": {}},
            {"id": "fc-5", "name": "async_add", "args": {"a": 1}},
        ]}})
        for _ in range(5):
            await c.wait_for(lambda m: len(c.messages("tool_response")) >= 5)
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    async def note_loop(conv):
        loop_thread.append(threading.get_ident())

    conv, events, server = asyncio.run(converse(
        script, engine, LiveConfig(tools=[slow_sync, async_add, broken]), during=note_loop,
        until=lambda ev: kinds(ev).count("tool_result") >= 5))
    responses = {r["id"]: r for m in server.connections[0].messages("tool_response") for r in m["functionResponses"]}
    assert responses["fc-1"] == {"id": "fc-1", "name": "slow_sync", "response": {"output": "slept"}}
    assert responses["fc-2"]["response"] == {"output": 5}
    assert responses["fc-3"]["response"] == {"error": "RuntimeError: the sensor is unplugged"}
    assert "no function named 'nobody'" in responses["fc-4"]["response"]["error"]
    assert responses["fc-5"]["response"]["error"].startswith("TypeError")
    assert ran_on["slow_sync"] != loop_thread[0] and ran_on["async_add"] == loop_thread[0]
    # The fast calls did not wait for the slow one.
    order = [e.data["id"] for e in events if e.kind == "tool_result"]
    assert order[-1] == "fc-1"
    assert [e.data["id"] for e in events if e.kind == "tool_call"] == ["fc-1", "fc-2", "fc-3", "fc-4", "fc-5"]
    assert conv._runner.errors == 3


@pytest.mark.parametrize("scheduling", ["INTERRUPT", "WHEN_IDLE", "SILENT"])
def test_non_blocking_declaration_and_response_scheduling(virtual_engine, scheduling):
    engine = virtual_engine()

    @function_tool(behavior="NON_BLOCKING", scheduling=scheduling)
    def check_stock(item: str) -> dict:
        """How many are in stock."""
        return {"item": item, "count": 3}

    async def script(c):
        setup = await c.accept_setup()
        assert setup["tools"][0]["functionDeclarations"][0]["behavior"] == "NON_BLOCKING"
        await c.send({"toolCall": {"functionCalls": [{"id": "fc-9", "name": "check_stock", "args": {"item": "tea"}}]}})
        await c.wait_for(lambda m: bool(c.messages("tool_response")))
        await asyncio.sleep(30)

    conv, events, server = asyncio.run(converse(script, engine, LiveConfig(tools=[check_stock]),
                                                until=lambda ev: "tool_result" in kinds(ev)))
    response = server.connections[0].messages("tool_response")[0]["functionResponses"][0]
    assert response["scheduling"] == scheduling
    assert response["response"] == {"item": "tea", "count": 3}


def test_tool_call_cancellation_cancels_the_running_call(virtual_engine):
    engine = virtual_engine()
    started: list[float] = []
    was_cancelled: list[bool] = []

    async def long_search(query: str) -> str:
        """Searches for a long time."""
        started.append(time.monotonic())
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            was_cancelled.append(True)
            raise
        return "found"

    async def script(c):
        await c.accept_setup()
        await c.send({"toolCall": {"functionCalls": [{"id": "fc-7", "name": "long_search", "args": {"query": "x"}}]}})
        await asyncio.sleep(0.3)
        await c.send(flag("interrupted"))
        await c.send({"toolCallCancellation": {"ids": ["fc-7"]}})
        await asyncio.sleep(0.5)
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    conv, events, server = asyncio.run(converse(script, engine, LiveConfig(tools=[long_search]),
                                                until=lambda ev: ev[-1].kind == "turn_complete"))
    assert was_cancelled == [True]
    assert [e.data["id"] for e in events if e.kind == "tool_cancelled"] == ["fc-7"]
    assert server.connections[0].messages("tool_response") == [], "no response for a cancelled call"


def test_function_calling_end_to_end_with_the_emulator(virtual_engine):
    engine = virtual_engine()
    with LiveEmulator().run_in_thread() as emu:

        async def main():
            conv = LiveConversation(engine, emu.make_client(), LiveConfig(tools=[local_time]))
            events = []

            async def watch():
                async for ev in conv.events():
                    events.append(ev)
                    if ev.kind == "turn_complete" and "local_time" in ev.text and "says" in ev.text:
                        conv.stop()

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0)
            conv.send_text("What does local_time say?")
            await asyncio.wait_for(conv.run(), 30)
            await watcher
            return conv, events

        conv, events = asyncio.run(main())
        session = emu.sessions[-1]
    call = session.tool_calls[0]
    assert call.name == "local_time"
    assert call.responses and call.responses[0].id == call.id
    result = call.responses[0].response
    assert set(result) == {"time", "date", "timezone", "iso"}
    tool_events = [e for e in events if e.kind in ("tool_call", "tool_result")]
    assert [e.kind for e in tool_events] == ["tool_call", "tool_result"]
    assert tool_events[0].data["id"] == call.id
    assert any(role == "model" and result["time"] in text for role, text in conv.transcript)


@pytest.mark.parametrize("scheduling", ["INTERRUPT", "SILENT"])
def test_non_blocking_call_end_to_end_with_the_emulator(virtual_engine, scheduling):
    engine = virtual_engine()

    @function_tool(behavior="NON_BLOCKING", scheduling=scheduling)
    async def stock_level(item: str = "tea") -> dict:
        """How many of an item are in stock."""
        await asyncio.sleep(0.3)  # the model keeps talking meanwhile
        return {"item": item, "count": 3}

    with LiveEmulator().run_in_thread() as emu:

        async def main():
            conv = LiveConversation(engine, emu.make_client(), LiveConfig(tools=[stock_level]))
            events = []

            async def watch():
                async for ev in conv.events():
                    events.append(ev)
                    done = ev.kind == "turn_complete" and "stock_level function says" in ev.text
                    if done or (scheduling == "SILENT" and ev.kind == "tool_result"):
                        await asyncio.sleep(1.0 if scheduling == "SILENT" else 0)
                        conv.stop()

            watcher = asyncio.create_task(watch())
            await asyncio.sleep(0)
            conv.send_text("Ask stock_level please.")
            await asyncio.wait_for(conv.run(), 30)
            await watcher
            return conv, events

        conv, events = asyncio.run(main())
        session = emu.sessions[-1]
        answers = [a.reply_text for a in session.answers]
    call = session.tool_calls[0]
    assert call.behavior == "NON_BLOCKING"
    assert answers[0].startswith("Let me check with stock_level"), "the model talked while the call ran"
    assert call.responses[0].scheduling == scheduling
    said = " ".join(text for role, text in conv.transcript if role == "model")
    if scheduling == "SILENT":
        assert "function says" not in said
    else:
        assert "stock_level function says" in said
