"""LiveConversation reports the engine's device events as ``device_lost`` / ``device_restored``,
once per transition, whether the supervisor's event or a failing read saw the loss first."""

from __future__ import annotations

import asyncio

import duplex
from duplex.engine import DeviceEvent
from duplex.live import LiveConversation


def event(kind: str) -> DeviceEvent:
    return DeviceEvent(kind=kind, at_s=1.0, message=f"{kind} for the test", output_device="alsa:default",  # type: ignore[arg-type]
                       input_device="alsa:default", outage_ms=250.0 if kind == "device_restored" else 0.0,
                       attempts=2 if kind == "device_restored" else 0)


class Engine(duplex.AudioEngine):
    """A virtual engine whose device events are scripted."""

    def __init__(self, events: list[DeviceEvent]) -> None:
        super().__init__(backend=duplex.VirtualDevice(speed=0))
        self.scripted = list(events)

    async def next_device_event_async(self, timeout: float | None = None) -> DeviceEvent | None:
        if not self.scripted:
            await asyncio.sleep(3600)
        return self.scripted.pop(0)


def test_engine_device_events_become_conversation_events() -> None:
    engine = Engine([event("device_lost"), event("device_lost"), event("device_restored")])
    conversation = LiveConversation(engine, client=None)  # type: ignore[arg-type]

    async def run() -> list:
        watcher = asyncio.create_task(conversation._watch_devices())
        while engine.scripted:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        watcher.cancel()
        got = []
        while not conversation._events.empty():
            got.append(conversation._events.get_nowait())
        return got

    try:
        got = asyncio.run(run())
    finally:
        engine.close()
    assert [e.kind for e in got] == ["device_lost", "device_restored"], got
    assert got[0].text == "device_lost for the test"
    assert got[1].data["outage_ms"] == 250.0 and got[1].data["attempts"] == 2
