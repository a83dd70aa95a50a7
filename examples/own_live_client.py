"""duplex as a drop-in audio layer for your own google-genai Live client.

Your code keeps the session; duplex replaces PyAudio and the asyncio queues: mic chunks come
from ``engine.chunks()``, the model's audio goes to ``engine.play_async()``, and on
``interrupted`` ``engine.interrupt()`` silences playback at once.

    python examples/own_live_client.py            # real devices; Gemini if GEMINI_API_KEY is set
    python examples/own_live_client.py --offline  # virtual device + local emulator (no key, no card)

Needs: pip install 'duplex-engine[live]'
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
from google import genai
from google.genai import types

import duplex

MODEL = os.environ.get("DUPLEX_MODEL", "gemini-3.8-live")


async def converse(client: genai.Client, engine: duplex.AudioEngine, seconds: float) -> None:
    config = {"response_modalities": ["AUDIO"], "output_audio_transcription": {}}
    async with client.aio.live.connect(model=MODEL, config=config) as session:

        async def send_mic() -> None:
            async for chunk in engine.chunks():  # 20 ms of 16 kHz s16le; never blocks the loop
                await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))

        async def receive() -> None:
            async for message in session.receive():
                content = message.server_content
                if content is None:
                    continue
                if content.interrupted:
                    report = engine.interrupt()  # barge-in: silent within a period + 5 ms fade
                    print(f"interrupted: the user heard {report.heard_ms:.0f} ms")
                if content.model_turn:
                    for part in content.model_turn.parts or []:
                        if part.inline_data and part.inline_data.data:
                            await engine.play_async(part.inline_data.data)  # 24 kHz s16le
                if content.output_transcription and content.output_transcription.text:
                    print(content.output_transcription.text, end="", flush=True)
                if content.turn_complete:
                    engine.end_turn()  # play out whatever is still in the jitter buffer
                    print("  [turn complete]")

        tasks = [asyncio.create_task(send_mic()), asyncio.create_task(receive())]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    offline = "--offline" in sys.argv or not os.environ.get("GEMINI_API_KEY")
    if not offline:
        with duplex.AudioEngine() as engine:
            asyncio.run(converse(genai.Client(http_options={"api_version": "v1beta"}), engine, 30.0))
        return
    from duplex.emulator import LiveEmulator

    # One second of "speech" (a loud tone: the emulator detects speech by energy), then silence.
    rate = 16_000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)
    mic = np.concatenate([np.zeros(rate // 5), tone, np.zeros(rate * 3)]).astype(np.float32)
    device = duplex.VirtualDevice(input=mic, input_rate=rate, output="memory")
    with LiveEmulator(scenario="fast").run_in_thread() as emulator, duplex.AudioEngine(backend=device) as engine:
        asyncio.run(converse(emulator.make_client(), engine, 4.0))
        print(f"played {engine.stats().frames_played} frames of the answer")


if __name__ == "__main__":
    main()
