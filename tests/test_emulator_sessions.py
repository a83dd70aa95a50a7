"""Session resumption and connection expiry as the service runs them, through the real SDK.

Handles are single-use; resuming while the issuing connection is open is refused with
1011; after a barge-in an update may say ``resumable: true`` without a new handle (the
last one still resumes); the connection ends with ``goAway`` then 1011 "Deadline expired".
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from duplex.emulator import LiveEmulator

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
MANUAL = {"automatic_activity_detection": {"disabled": True}}


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def config(handle: str | None = None, scenario: str = "fast") -> dict[str, Any]:
    return {"response_modalities": ["AUDIO"], "session_resumption": {"handle": handle} if handle else {},
            "realtime_input_config": MANUAL, "http_options": {"headers": {"x-duplex-scenario": scenario}}}


async def first_handle(session: Any) -> str:
    """The handle of the first resumable update."""
    async for msg in session.receive():
        update = msg.session_resumption_update
        if update and update.resumable and update.new_handle:
            return update.new_handle
    raise AssertionError("no handle")


def test_a_handle_resumes_once_and_never_while_its_connection_is_open() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = emu.make_client()
            async with client.aio.live.connect(model=MODEL, config=config()) as first:
                handle = await first_handle(first)
                with pytest.raises(genai_errors.APIError) as while_open:
                    async with client.aio.live.connect(model=MODEL, config=config(handle)):
                        pass
                await first.send_realtime_input(text="still here")  # the open connection is unharmed
                got = []
                async for msg in first.receive():
                    got.append(msg)
            async with client.aio.live.connect(model=MODEL, config=config(handle)) as resumed:
                assert resumed.setup_complete is not None
            with pytest.raises(genai_errors.APIError) as reused:
                async with client.aio.live.connect(model=MODEL, config=config(handle)):
                    pass
            return emu.sessions, while_open.value, reused.value, got

    sessions, while_open, reused, got = run(main())
    assert (while_open.code, while_open.details) == (1011, "Internal error encountered.")
    assert "still open" in sessions[1].error_detail
    assert any(m.data for m in got)
    assert sessions[2].resumed_with and sessions[2].state_id == sessions[0].state_id
    assert (reused.code, reused.details) == (1007, "Request contains an invalid argument.")
    assert "already used" in sessions[3].error_detail


def test_after_a_barge_in_the_update_is_resumable_without_a_new_handle() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = emu.make_client()
            updates = []
            async with client.aio.live.connect(model=MODEL, config=config(scenario="normal")) as s:
                await s.send_realtime_input(text="tell me a story about boats")
                barged = False
                async for msg in s.receive():  # ends at the turnComplete of the cut turn
                    if msg.session_resumption_update:
                        updates.append(msg.session_resumption_update)
                    if msg.data and not barged:
                        barged = True
                        await s.send_realtime_input(activity_start=types.ActivityStart())
                async for msg in s.receive():  # the trailing update after the cut turn
                    if msg.session_resumption_update:
                        updates.append(msg.session_resumption_update)
                        break
            handle = next(u.new_handle for u in reversed(updates) if u.new_handle)
            async with client.aio.live.connect(model=MODEL, config=config(handle)) as resumed:
                assert resumed.setup_complete is not None
            return emu.sessions, updates

    sessions, updates = run(main())
    assert [(u.resumable, bool(u.new_handle)) for u in updates] == [(True, True), (False, False), (True, False)]
    assert sessions[0].interruptions and sessions[1].resumed_with == updates[0].new_handle


def test_connection_expiry_is_go_away_then_1011_deadline_expired() -> None:
    async def main() -> Any:
        async with LiveEmulator() as emu:
            scenario = "go_away,connection_lifetime_s=1.2,go_away_lead_s=0.6"
            async with emu.make_client().aio.live.connect(model=MODEL, config=config(scenario=scenario)) as s:
                got = []
                with pytest.raises(genai_errors.APIError) as info:
                    while True:
                        async for msg in s.receive():
                            got.append(msg)
            return got, info.value

    got, err = run(main())
    assert [m.go_away.time_left for m in got if m.go_away] == ["0.600s"]
    assert (err.code, err.details) == (1011, "Deadline expired before operation could complete.")
