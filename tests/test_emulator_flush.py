"""A client that does not flush its playback on ``interrupted`` fails loudly here.

The service streams answers faster than real time, so when the user barges in a client
holds seconds of answer audio; only a flush on ``interrupted`` silences it. With the old
real-time pacing such a client lost at most ~0.5 s and passed barge-in tests. This test
runs duplex's own conversation with the flush taken out, on the virtual device, and
measures from the speaker's recording how long the cut answer went on playing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav

import duplex
from duplex.demo import speak
from duplex.emulator import LiveEmulator, Scenario
from duplex.live import LiveConfig, LiveConversation

pytestmark = pytest.mark.timeout(90)

RATE = 22_050
LONG_REPLY = ("You said something for {seconds:.1f} seconds, and here is a long answer about it "
              "that goes on and on for quite a while, so that there is plenty left to cut.")


class NoFlushConversation(LiveConversation):
    """duplex's conversation with one bug: it ignores ``interrupted`` (no flush)."""

    marks: list[int]

    def _handle_content(self, content):  # type: ignore[no-untyped-def]
        if content.interrupted:
            self.marks.append(self.engine.stats().frames_rendered)
            content = content.model_copy(update={"interrupted": None})
        return super()._handle_content(content)


def stale_playback_s(scenario: Scenario, tmp_path: Path) -> float:
    """Seconds of the cut answer the listener still heard after ``interrupted`` arrived."""
    phrase = speak("Hello there, can you hear me?", 0)[0]
    t = np.arange(int(25 * RATE)) / RATE
    barge = 0.1 * np.sin(2 * np.pi * 220 * t)  # the user speaks up, and goes on (no second answer)
    mic = np.concatenate([np.zeros(int(0.2 * RATE)), phrase, np.zeros(int(1.6 * RATE)), barge])
    path = write_wav(tmp_path / "mic.wav", np.clip(mic * 32767, -32768, 32767).astype(np.int16), RATE)
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(input=path), prebuffer_ms=100).start()

    async def main() -> None:
        async with LiveEmulator(scenario=scenario) as emu:
            conv = NoFlushConversation(engine, emu.make_client(), LiveConfig())
            conv.marks = []
            done_at: list[float] = []

            async def watch() -> None:
                async for ev in conv.events():
                    if ev.kind == "turn_complete" and conv.marks and not done_at:
                        done_at.append(ev.time)
                    if done_at and ev.time - done_at[0] > 5.5:  # let the queued audio play out
                        conv.stop()

            watcher = asyncio.create_task(watch())
            await asyncio.wait_for(conv.run(duration=30), 40)
            await watcher
            assert len(emu.sessions[0].interruptions) == 1 and len(emu.sessions[0].answers) == 1
            stale.append(conv.marks[0])

    stale: list[int] = []
    try:
        asyncio.run(main())
        engine.stop()
        rec = engine.recording()[:, 0]
    finally:
        engine.close()
    after = np.flatnonzero(np.abs(rec[stale[0]:]) > 1e-3)
    return 0.0 if after.size == 0 else (after[-1] + 1) / 48_000


@pytest.mark.parametrize("preset", ["normal", "realtime"])
def test_forgetting_to_flush_on_interrupted_plays_seconds_of_stale_audio(preset: str, tmp_path: Path) -> None:
    stale = stale_playback_s(Scenario(reply_template=LONG_REPLY).apply(preset), tmp_path)
    if preset == "normal":  # the service's pacing: the rest of the answer was already there
        assert stale > 2.0, f"only {stale:.2f} s of stale audio"
    else:  # the old pacing hid the bug: about half a second
        assert stale < 0.9, f"{stale:.2f} s of stale audio"
