"""The emulator checked from outside: a client written from Google's documentation alone.

``DocsClient`` uses no duplex code and no google-genai SDK: raw ``websockets`` and JSON
exactly as https://ai.google.dev/api/live and the "Get started with the Live API using
WebSockets" guide describe them (the key in ``?key=``, camelCase fields, standard base64,
``realtimeInput.audio`` at 16 kHz, ``toolResponse.functionResponses``), summarised in
``live_protocol.md``. It reads every part of every message, as the docs' schema allows
several. Only the emulator's address and certificate come from duplex.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from typing import Any

import numpy as np
import pytest
import websockets

from duplex.emulator import LiveEmulator

pytestmark = pytest.mark.timeout(90)

MODEL = "models/gemini-2.5-flash-native-audio-preview-09-2025"
SERVER_KEYS = {"setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
               "sessionResumptionUpdate", "usageMetadata"}


class DocsClient:
    """A minimal Live API client following the public reference, message by message."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.binary_frames = 0
        self.audio = bytearray()  # 24 kHz s16le, every inlineData part of every modelTurn
        self.output_text = ""
        self.input_text = ""
        self.tool_calls: list[dict[str, Any]] = []
        self.interrupted = 0
        self.turns_complete = 0
        self.usage: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, host_port: str, api_key: str, ca_file: str) -> DocsClient:
        url = (f"wss://{host_port}/ws/google.ai.generativelanguage.v1beta.GenerativeService."
               f"BidiGenerateContent?key={api_key}")
        ctx = ssl.create_default_context(cafile=ca_file)
        return cls(await websockets.connect(url, ssl=ctx, max_size=1 << 20))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def setup(self, config: dict[str, Any]) -> dict[str, Any]:
        """The first message is ``setup``; the server answers ``setupComplete``."""
        await self.send({"setup": config})
        return await self.receive()

    async def send_audio(self, pcm16k: np.ndarray, chunk_ms: int = 40, realtime: bool = True) -> None:
        """``realtimeInput.audio`` blobs: raw 16-bit PCM, 16 kHz, standard base64."""
        step = 16 * chunk_ms
        t0 = time.monotonic()
        for i in range(0, pcm16k.size, step):
            data = base64.b64encode(pcm16k[i : i + step].astype("<i2").tobytes()).decode()
            await self.send({"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}})
            if realtime:
                await asyncio.sleep(max(0.0, t0 + (i + step) / 16_000 - time.monotonic()))

    async def send_text_turn(self, text: str) -> None:
        await self.send({"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}],
                                           "turnComplete": True}})

    async def send_tool_response(self, call: dict[str, Any], response: dict[str, Any]) -> None:
        await self.send({"toolResponse": {"functionResponses": [
            {"id": call["id"], "name": call["name"], "response": response}]}})

    async def receive(self) -> dict[str, Any]:
        """One server message, decoded and folded into the client's state."""
        frame = await self.ws.recv()
        if isinstance(frame, bytes):
            self.binary_frames += 1
            frame = frame.decode("utf-8")
        message = json.loads(frame)
        self.messages.append(message)
        content = message.get("serverContent", {})
        for part in content.get("modelTurn", {}).get("parts", []):
            blob = part.get("inlineData")
            if blob and blob["mimeType"].startswith("audio/pcm"):
                self.audio += base64.b64decode(blob["data"])
        self.output_text += content.get("outputTranscription", {}).get("text", "")
        self.input_text += content.get("inputTranscription", {}).get("text", "")
        self.interrupted += bool(content.get("interrupted"))
        self.turns_complete += bool(content.get("turnComplete"))
        if "usageMetadata" in message:
            self.usage.append(message["usageMetadata"])
        if "toolCall" in message:
            self.tool_calls.extend(message["toolCall"]["functionCalls"])
        return message

    async def until(self, predicate: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if predicate(message):
                return message


def tone(seconds: float, level: float = 0.3) -> np.ndarray:
    """A loud 220 Hz tone: the energy VAD hears it as speech."""
    t = np.arange(int(16_000 * seconds)) / 16_000
    return (level * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def test_a_client_written_from_the_docs_talks_calls_a_function_and_barges_in() -> None:
    declaration = {"name": "get_weather", "description": "Weather in a city.",
                   "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}

    async def main() -> Any:
        async with LiveEmulator() as emu:
            client = await DocsClient.connect(f"127.0.0.1:{emu.port}", "docs-key", str(emu.cert_path))
            try:
                reply = await client.setup({
                    "model": MODEL,
                    "generationConfig": {"responseModalities": ["AUDIO"],
                                         "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}},
                    "systemInstruction": {"parts": [{"text": "You are terse."}]},
                    "inputAudioTranscription": {}, "outputAudioTranscription": {},
                    "tools": [{"functionDeclarations": [declaration]}],
                })
                assert reply == {"setupComplete": {}}
                # 1. A spoken question, then silence: an answer in audio and words.
                await client.send_audio(np.concatenate([tone(0.8), np.zeros(16_000, np.int16)]))
                await client.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
                spoken = len(client.audio)
                # 2. A typed turn naming the function: toolCall, toolResponse, an answer using it.
                await client.send_text_turn("What is the weather? get_weather city=Paris")
                await client.until(lambda m: "toolCall" in m)
                await client.send_tool_response(client.tool_calls[-1], {"forecast": "sunny, 21 C"})
                # Native-audio models call NON_BLOCKING by default: a filler turn, then the
                # result in a turn of its own (scheduling unset = when idle).
                await client.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
                await client.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
                # 3. Speech while the model answers: interrupted, then the answer to it.
                await client.send_text_turn("Tell me a long story about the sea and its ships")
                await client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
                await client.send_audio(np.concatenate([tone(0.6), np.zeros(12_000, np.int16)]))
                await client.until(lambda m: m.get("serverContent", {}).get("interrupted"))
                await client.until(lambda m: m.get("serverContent", {}).get("generationComplete"))
                await client.until(lambda m: m.get("serverContent", {}).get("turnComplete"))
            finally:
                await client.ws.close()
            await asyncio.sleep(0.1)
            return client, spoken, emu.sessions[0]

    client, spoken, record = asyncio.run(asyncio.wait_for(main(), 60))
    # Only documented top-level keys, UTF-8 JSON in binary frames, like the service.
    assert all(set(m) <= SERVER_KEYS for m in client.messages)
    assert client.binary_frames == len(client.messages)
    # Every part of every message counted: exactly the audio the emulator sent, 24 kHz.
    assert len(client.audio) == sum(sum(a.chunk_bytes) for a in record.answers)
    assert spoken == round(record.answers[0].audio_total_s * 24_000) * 2
    assert "You said something for 0.8 seconds." in client.output_text
    assert client.input_text.startswith("[speech 0.8 s]")
    (call,) = client.tool_calls
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"} and call["id"]
    assert "The get_weather function says forecast sunny, 21 C." in client.output_text
    assert client.interrupted == 1 and record.interruptions[0].cause == "vad"
    # spoken, filler, function result, interrupted, the answer to the barge-in
    assert client.turns_complete == 5
    prompts = [u["promptTokenCount"] for u in client.usage]
    assert prompts == sorted(prompts)
    assert record.path.endswith("?key=<set>")
