"""The asyncio side of AudioEngine: cancellation loses nothing and queues nothing, nothing
on the event loop waits on the engine, and mute/unmute."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

import numpy as np
import pytest
from conftest import sine, to_i16

import duplex
from duplex.errors import PlaybackFullError


class NativeSpy:
    """Wraps an engine's native handle and records every blocking-capable call made on
    the event loop's thread with a timeout other than 0 (which would block the loop)."""

    def __init__(self, native, loop_thread: int) -> None:
        self._native = native
        self._loop_thread = loop_thread
        self.blocking_on_loop: list[tuple[str, object]] = []

    def __getattr__(self, name):
        attr = getattr(self._native, name)
        if name not in ("read", "read_array", "play", "end_turn"):
            return attr

        def call(*args, **kwargs):
            positional = args[1:] if name == "play" else args
            timeout = kwargs.get("timeout", positional[0] if positional else None)
            if threading.get_ident() == self._loop_thread and timeout != 0.0:
                self.blocking_on_loop.append((name, timeout))
            return attr(*args, **kwargs)

        return call


def test_cancelled_read_async_loses_no_chunk(virtual_engine):
    engine = virtual_engine(input=duplex.Tone(440.0, 0.3))

    async def main() -> int:
        got = 0
        cancels = 0
        for i in range(60):
            if i % 2:
                chunk = await engine.read_async(1.0)
                assert chunk is not None
                got += 1
            else:
                # Cancelled while the reader thread waits for the next chunk.
                try:
                    await asyncio.wait_for(engine.read_async(1.0), 0.004)
                    got += 1
                except asyncio.TimeoutError:
                    cancels += 1
        assert cancels > 10, "the test must really cancel reads in flight"
        # Whatever the native side handed out reached this caller.
        await asyncio.sleep(0.1)  # every reader-thread read has finished
        while await engine.read_async(0) is not None:  # a chunk fetched for a cancelled call comes first
            got += 1
        return got

    got = asyncio.run(main())
    assert engine.stats().chunks_read == got


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python 3.11+")
def test_leaving_chunks_through_asyncio_timeout_loses_no_chunk(virtual_engine):
    engine = virtual_engine(input=duplex.Tone(440.0, 0.3))

    async def main() -> int:
        got = 0
        for _ in range(15):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.03):
                    async for _chunk in engine.chunks():
                        got += 1
        await asyncio.sleep(0.1)
        while await engine.read_async(0) is not None:  # a chunk fetched for a cancelled call comes first
            got += 1
        return got

    got = asyncio.run(main())
    assert got > 10
    assert engine.stats().chunks_read == got


def _loud_after(engine, mark: int) -> int:
    rec = engine.recording()[:, 0]
    return int(np.count_nonzero(np.abs(rec[mark:]) > 1e-4))


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancelled_or_timed_out_play_async_queues_nothing(virtual_engine, how):
    engine = virtual_engine(prebuffer_ms=0, playback_buffer_ms=300)
    tone = to_i16(sine(24_000, 440.0, 0.25, 0.5))
    later = to_i16(sine(24_000, 1000.0, 0.2, 0.5))

    async def main() -> int:
        await engine.play_async(tone)
        # The buffer cannot take 200 ms more for another ~150 ms: this call must wait.
        if how == "cancel":
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(engine.play_async(later), 0.03)
        else:
            with pytest.raises(PlaybackFullError, match=r"\(30 ms\)"):
                await engine.play_async(later, timeout=0.03)
        engine.interrupt()
        mark = engine.stats().frames_rendered
        await asyncio.sleep(0.5)  # long enough for a leaked chunk to be queued and played
        return mark

    mark = asyncio.run(main())
    # After the flush (one period plus the 5 ms fade) nothing plays: the 1 kHz chunk was
    # never queued, not even later by a thread.
    assert _loud_after(engine, mark + 480 + 240) == 0
    assert engine.stats().playback_buffered_ms == 0


def test_play_async_waits_for_room_and_queues_everything(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0, playback_buffer_ms=300)
    chunk = to_i16(sine(24_000, 440.0, 0.1, 0.5))

    async def main() -> None:
        for _ in range(8):  # 800 ms through a 300 ms buffer: waits on the way
            await engine.play_async(chunk)
        await engine.end_turn_async()
        await asyncio.sleep(0.8)

    asyncio.run(main())
    # Every frame was queued and played (counted, so an underrun on a loaded machine does
    # not matter), and nothing more.
    assert engine.stats().frames_played / 48_000 == pytest.approx(0.8, abs=0.005)


def test_async_calls_never_block_the_event_loop(virtual_engine):
    engine = virtual_engine(input=duplex.Tone(440.0, 0.3), prebuffer_ms=0, playback_buffer_ms=200)
    chunk = to_i16(sine(24_000, 440.0, 0.1, 0.5))

    async def main() -> NativeSpy:
        spy = NativeSpy(engine._native, threading.get_ident())
        engine._native = spy
        for _ in range(6):
            await engine.play_async(chunk)  # the buffer fills: waits
            await engine.read_async(0.5)
        await engine.end_turn_async(timeout=1.0)
        async for _ in engine.chunks():
            break
        return spy

    spy = asyncio.run(main())
    engine._native = spy._native
    assert spy.blocking_on_loop == []


def test_mute_drops_captured_audio_and_unmute_resumes(virtual_engine):
    engine = virtual_engine(input=duplex.Tone(440.0, 0.3))

    async def main() -> tuple[list, bytes | None]:
        assert await engine.read_async(1.0) is not None
        engine.mute()
        assert engine.muted
        muted = [await engine.read_async(0.05) for _ in range(5)]
        engine.unmute()
        return muted, await engine.read_async(1.0)

    muted, after = asyncio.run(main())
    assert muted == [None] * 5
    assert after is not None and len(after) == engine.chunk_bytes
    # Nothing captured while muted piled up (the capture ring was drained, not overflowed).
    assert engine.stats().capture_overflows == 0
