"""A scriptable raw Live server for client tests: TLS websockets, any frame, any fault.

Each connection runs ``script(conn)``; the script decides what the server sends (valid
messages, junk, nothing), when it closes, and whether it freezes (stops reading the
socket, so even keepalive pings go unanswered, as a SIGSTOPped peer would). The real
google-genai SDK connects to it exactly as to the service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import websockets
from google import genai
from websockets.asyncio.server import ServerConnection, serve

from duplex.emulator.certs import generate_certificate


def tone_pcm(freq: float, seconds: float, amplitude: float = 0.5, rate: int = 24_000) -> bytes:
    """A sine as 16-bit little-endian PCM."""
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def audio_message(pcm: bytes, rate: int = 24_000, **extra: Any) -> dict[str, Any]:
    """A serverContent message with one audio part (and any other serverContent fields)."""
    part = {"inlineData": {"mimeType": f"audio/pcm;rate={rate}", "data": base64.b64encode(pcm).decode()}}
    return {"serverContent": {"modelTurn": {"parts": [part]}, **extra}}


def flag(name: str) -> dict[str, Any]:
    """``{"serverContent": {name: true}}``."""
    return {"serverContent": {name: True}}


class FakeConnection:
    """One accepted connection, as seen by a script."""

    def __init__(self, ws: ServerConnection, index: int) -> None:
        self.ws = ws
        self.index = index
        self.setup: dict[str, Any] | None = None
        self.received: list[tuple[float, dict[str, Any]]] = []
        self.closed_by_client = False
        self.closed_at: float | None = None
        self.opened_at = time.monotonic()
        self._new = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self.ws.request.path if self.ws.request else ""

    async def accept_setup(self, reply: bool = True, session_id: str | None = None) -> dict[str, Any]:
        """Reads the setup message and (by default) answers setupComplete."""
        raw = await self.ws.recv()
        self.setup = json.loads(raw)["setup"]
        if reply:
            await self.send({"setupComplete": {"sessionId": session_id} if session_id else {}})
        self._reader = asyncio.create_task(self._read())
        return self.setup

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                async with self._new:
                    self.received.append((time.monotonic(), message))
                    self._new.notify_all()
        except websockets.exceptions.ConnectionClosed:
            pass
        self.closed_at = time.monotonic()
        proto = self.ws.protocol
        self.closed_by_client = proto.close_rcvd is not None and (
            proto.close_sent is None or bool(proto.close_rcvd_then_sent))
        async with self._new:
            self._new.notify_all()

    def messages(self, key: str) -> list[dict[str, Any]]:
        """Client messages with this top-level key (either spelling)."""
        camel = key.split("_")[0] + "".join(w.title() for w in key.split("_")[1:])
        return [m.get(key, m.get(camel)) for _, m in self.received if key in m or camel in m]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first client message (already received or to come) matching ``predicate``."""
        async def find() -> dict[str, Any]:
            seen = 0
            async with self._new:
                while True:
                    for _, message in self.received[seen:]:
                        if predicate(message):
                            return message
                    seen = len(self.received)
                    await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        """Sends a message (a dict as JSON in a binary frame, like the service) or raw data."""
        data = json.dumps(message).encode() if isinstance(message, dict) else message
        await self.ws.send(data)

    async def stream(self, pcm: bytes, chunk_ms: int = 40, speed: float | None = None) -> None:
        """Sends audio in chunks: all at once (speed None) or at ``speed`` x real time."""
        step = 24 * chunk_ms * 2
        t0 = time.monotonic()
        for i in range(0, len(pcm), step):
            if speed:
                await asyncio.sleep(max(0.0, t0 + (i / 2 / 24_000) / speed - time.monotonic()))
            await self.send(audio_message(pcm[i : i + step]))

    def freeze(self) -> None:
        """Stops reading the socket: no message, no pong, as if the process were stopped."""
        self.ws.transport.pause_reading()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.ws.wait_closed(), timeout)


Script = Callable[[FakeConnection], Awaitable[None]]


class FakeLiveServer:
    """``async with FakeLiveServer(script) as server: client = server.make_client()``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections: list[FakeConnection] = []
        self.errors: list[BaseException] = []
        self._certs = generate_certificate()
        self._server: Any = None
        self._handlers: list[asyncio.Task[Any]] = []
        self.port = 0

    async def __aenter__(self) -> FakeLiveServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, ssl=self._certs.server_context(),
                                   ping_interval=None, max_size=None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close(close_connections=False)
        for conn in self.connections:
            conn.ws.transport.abort()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._certs.remove()

    async def _serve(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws, len(self.connections))
        self._handlers.append(asyncio.current_task())
        self.connections.append(conn)
        try:
            await self.script(conn)
            if conn._reader is not None:
                await conn._reader
            else:
                await ws.wait_closed()
        except websockets.exceptions.ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # shown by the test that used the server
            self.errors.append(exc)
            raise

    def make_client(self) -> genai.Client:
        """A genai client that trusts this server's certificate."""
        return genai.Client(api_key="fake-key", http_options={
            "base_url": f"https://127.0.0.1:{self.port}", "api_version": "v1beta",
            "async_client_args": {"ssl": self._certs.client_context()},
        })
