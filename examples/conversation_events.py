"""A whole Live conversation with duplex.live.LiveConversation, watching its events.

LiveConversation sends the mic, plays the answer, flushes on barge-in, cuts the transcript
where the listener stopped hearing it and resumes dropped sessions; you watch ``events()``.

    python examples/conversation_events.py             # real devices; Gemini if GEMINI_API_KEY is set
    python examples/conversation_events.py --offline   # virtual device + local emulator

Needs: pip install 'duplex-engine[live]'
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
from google import genai

import duplex
from duplex.live import LiveConfig, LiveConversation


async def run(engine: duplex.AudioEngine, client: genai.Client, seconds: float) -> None:
    conversation = LiveConversation(engine, client, LiveConfig(voice="Kore"))

    async def show() -> None:
        async for event in conversation.events():
            if event.kind == "interrupted":
                print(f"[interrupted] the user heard: {event.text!r} ({event.data['heard_ms']:.0f} ms)")
            elif event.kind == "turn_complete":
                print(f"[turn complete] model: {event.text}")
                conversation.stop()  # one exchange is enough for the example
            elif event.kind == "stats":
                print(f"[stats] buffered {event.data['playback_buffered_ms']:.0f} ms, "
                      f"underruns {event.data['underruns']}")
            elif event.kind in ("connected", "input_transcript", "reconnecting", "error", "closed"):
                print(f"[{event.kind}] {event.text}")

    watcher = asyncio.create_task(show())
    await conversation.run(duration=seconds)
    await watcher
    for role, text in conversation.transcript:
        print(f"{role:>6}: {text}")


def main() -> None:
    if "--offline" not in sys.argv and os.environ.get("GEMINI_API_KEY"):
        with duplex.AudioEngine() as engine:
            asyncio.run(run(engine, genai.Client(http_options={"api_version": "v1beta"}), 60.0))
        return
    from duplex.emulator import LiveEmulator

    rate = 16_000
    speech = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)  # the emulator detects energy
    mic = np.concatenate([np.zeros(rate // 5), speech, np.zeros(rate * 4)]).astype(np.float32)
    device = duplex.VirtualDevice(input=mic, input_rate=rate)
    with LiveEmulator(scenario="fast").run_in_thread() as emulator, duplex.AudioEngine(backend=device) as engine:
        asyncio.run(run(engine, emulator.make_client(), 15.0))


if __name__ == "__main__":
    main()
