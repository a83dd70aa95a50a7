"""The Live audio sender with a backlog of captured chunks and a connection reset under it.

After a reconnect (or a device faster than the network) the engine holds hundreds of ready
chunks, and ``read_async`` returns each without leaving the event loop. The SDK's send does
not leave it either. A peer that resets the connection is then seen the way asyncio sees
it: the write that meets the reset closes the transport at once (``is_closing()``) and
schedules ``connection_lost`` on the loop; until that callback runs, websockets still
thinks the socket is open and every further write is dropped by the transport with only a
``socket.send() raised exception.`` log line. Before the sender yielded after every chunk
and looked at the transport, it wrote the whole backlog into the dead socket: the
whole-session soak lost 397 and 105 chunks at two dropped connections.

These tests model exactly that (no network, no timing): the fake session below drops
writes the way asyncio's transport does and only learns of the loss when the loop runs.
"""

from __future__ import annotations

import asyncio

import pytest

from duplex.live import LiveConfig, LiveConversation
from duplex.live.transport import ConnectionLost

CHUNK_BYTES = 640  # 20 ms of 16 kHz 16-bit mono


def _chunk(i: int) -> bytes:
    return i.to_bytes(2, "little") * (CHUNK_BYTES // 2)


class _BacklogEngine:
    """An engine holding ``n`` captured chunks, ready at once: ``read_async`` returns each
    without leaving the event loop, as the real one does for a complete chunk. When the
    backlog is gone it sets ``stop`` (the test is over) and returns nothing."""

    muted = False

    def __init__(self, n: int, stop: asyncio.Event) -> None:
        self.chunks = [_chunk(i) for i in range(n)]
        self.taken = 0
        self._stop = stop

    async def read_async(self, timeout: float | None = None) -> bytes | None:
        if self.taken < len(self.chunks):
            self.taken += 1
            return self.chunks[self.taken - 1]
        self._stop.set()
        await asyncio.sleep(0)
        return None


class _Transport:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class _Socket:
    def __init__(self) -> None:
        self.transport = _Transport()


class _SocketClosed(Exception):
    """What websockets raises for a send once ``connection_lost`` has run."""


class _ResettingSession:
    """The SDK session's audio path over a socket the peer resets at write ``reset_at``
    (never, if None). Records what the peer got and what was written into the dead socket."""

    def __init__(self, reset_at: int | None) -> None:
        self._ws = _Socket()  # where duplex.live.transport looks for the transport
        self.reset_at = reset_at
        self.delivered: list[bytes] = []
        self.in_flight: list[bytes] = []  # the write that met the reset
        self.into_dead_socket: list[bytes] = []
        self.connection_lost_ran = False

    def _connection_lost(self) -> None:
        self.connection_lost_ran = True

    async def send_realtime_input(self, *, audio=None, **_: object) -> None:
        assert audio is not None
        if self.connection_lost_ran:
            raise _SocketClosed("sent after connection_lost")
        transport = self._ws.transport
        if transport.closing:
            # asyncio's selector transport after a fatal error: dropped, logged, no error.
            self.into_dead_socket.append(audio.data)
            return
        if len(self.delivered) == self.reset_at:
            # ECONNRESET on this write: the transport closes now, connection_lost is
            # scheduled for the loop's next turn, and this chunk is gone with the socket.
            transport.closing = True
            self.in_flight.append(audio.data)
            asyncio.get_running_loop().call_soon(self._connection_lost)
            return
        self.delivered.append(audio.data)


def _conversation(n: int) -> tuple[LiveConversation, _BacklogEngine, asyncio.Event]:
    stop = asyncio.Event()
    engine = _BacklogEngine(n, stop)
    return LiveConversation(engine, client=None, config=LiveConfig()), engine, stop  # type: ignore[arg-type]


def test_a_reset_under_a_backlog_stops_the_sender_and_keeps_the_next_chunk():
    async def main():
        conv, engine, stop = _conversation(200)
        session = _ResettingSession(reset_at=5)
        with pytest.raises((ConnectionLost, _SocketClosed)):
            await conv._send_audio(session, stop)
        return conv, engine, session

    conv, engine, session = asyncio.run(main())
    # Nothing written into the dead socket; only the write that met the reset is lost
    # (in flight, as with any cut connection).
    assert session.into_dead_socket == []
    assert session.delivered == engine.chunks[:5]
    assert session.in_flight == [engine.chunks[5]]
    assert conv.chunks_sent == 6
    # The chunk taken after the reset waits for the next connection, and the rest of the
    # backlog is still in the engine: every chunk is delivered, in flight, in hand or unread.
    assert conv._pending_chunk == engine.chunks[6]
    assert engine.taken == 7


def test_the_receiver_runs_between_chunks_of_a_backlog():
    """An ``interrupted`` from the server (here: any callback the loop has ready) is handled
    after the chunk being sent, not after the whole backlog."""

    async def main():
        conv, engine, stop = _conversation(100)
        session = _ResettingSession(reset_at=None)
        sent_when_the_receiver_ran: list[int] = []
        asyncio.get_running_loop().call_soon(lambda: sent_when_the_receiver_ran.append(len(session.delivered)))
        await conv._send_audio(session, stop)
        return session, sent_when_the_receiver_ran

    session, ran_at = asyncio.run(main())
    assert len(session.delivered) == 100
    assert len(ran_at) == 1 and ran_at[0] <= 1
