"""What the model says: its audio into the engine, in order, and both sides' transcripts.

The receiver never waits on playback: audio goes into a FIFO that one player task feeds
to :meth:`AudioEngine.play_async`, so a full playback buffer never delays reading the
``interrupted`` that would empty it. On ``interrupted`` the FIFO is emptied, the chunk in
flight is cancelled (``play_async`` queues nothing when cancelled) and the engine flushes;
audio that arrives afterwards is the next answer and plays. Nothing here survives a
reconnect except audio already received, which keeps playing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine import PLAY_RATE_HZ, AudioEngine
from ..errors import DeviceError

__all__ = ["ModelOutput"]

_END_TURN = object()  # FIFO marker: the turn's tail may play without the prebuffer


class ModelOutput:
    """Plays the model's audio and keeps the transcript of one conversation.

    Args:
        engine: where the audio plays.
        emit: ``emit(kind, text, **data)`` for events.
        transcript: the conversation's ``[(role, text)]`` list, appended to in order.
    """

    def __init__(self, engine: AudioEngine, emit: Callable[..., None], transcript: list[tuple[str, str]]) -> None:
        self.engine = engine
        self._emit = emit
        self.transcript = transcript
        self._fifo: collections.deque[Any] = collections.deque()
        self._wake = asyncio.Event()
        self._player: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._turn_frames = 0  # 24 kHz frames of the current answer received so far
        self._pieces: list[tuple[int, str]] = []  # (frames received before it, text)
        self._odd_byte = b""  # half a sample carried to the next chunk of the same turn
        self._input_parts: list[str] = []
        self._after_interrupt = False  # an interrupted turn's turnComplete may still come
        self.answer_in_progress: bool = False
        self.odd_bytes: int = 0
        self.resampled_chunks: int = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Starts the player task (call on the running loop)."""
        if self._player is None or self._player.done():
            self._player = asyncio.create_task(self._play_loop(), name="duplex-live-player")

    async def aclose(self) -> None:
        """Stops the player. Audio already in the engine plays out (its turn is ended, so a
        tail shorter than the prebuffer plays too); audio not yet handed over is dropped."""
        if self._player is not None:
            self._player.cancel()
            await asyncio.gather(self._player, return_exceptions=True)
            self._player = None
        self._fifo.clear()
        with contextlib.suppress(Exception):  # a closed engine, or no room for the tail
            self.engine.end_turn(0.0)

    def check(self) -> None:
        """Raises what stopped the player (e.g. the engine was closed), if anything."""
        if self._failure is not None:
            raise self._failure

    @property
    def queued_chunks(self) -> int:
        """Chunks received but not yet handed to the engine."""
        return sum(1 for item in self._fifo if item is not _END_TURN)

    async def _play_loop(self) -> None:
        try:
            while True:
                while not self._fifo:
                    self._wake.clear()
                    await self._wake.wait()
                item = self._fifo[0]
                try:
                    if item is _END_TURN:
                        await self.engine.end_turn_async()
                    else:
                        await self.engine.play_async(item)
                except DeviceError:
                    # The speaker is gone for now; the engine reopens it. Keep the chunk.
                    await asyncio.sleep(0.05)
                    continue
                # Only now is it done with: a cancel during the await queued nothing and
                # the interrupt that caused it has emptied the FIFO.
                if self._fifo and self._fifo[0] is item:
                    self._fifo.popleft()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the engine closed or refused: the conversation ends
            self._failure = exc

    # -- the model's turn --------------------------------------------------------------

    def _answer_starts(self) -> None:
        self.answer_in_progress = True
        self._after_interrupt = False  # what comes after `interrupted` is the next answer

    def audio(self, data: bytes, mime_type: str) -> None:
        """Queues one chunk of model audio (``audio/pcm``; any rate is converted to 24 kHz)."""
        self._answer_starts()
        carried = self._odd_byte
        data = carried + data
        if len(data) % 2:
            # A sample split across messages: keep its first byte for the next chunk.
            if not carried:
                self.odd_bytes += 1
            data, self._odd_byte = data[:-1], data[-1:]
        else:
            self._odd_byte = b""
        if not data:
            return
        rate = _rate_of(mime_type)
        if rate != PLAY_RATE_HZ:
            from ..pcm import resample_int16

            data = resample_int16(np.frombuffer(data, "<i2"), rate, PLAY_RATE_HZ).astype("<i2").tobytes()
            self.resampled_chunks += 1
        self._turn_frames += len(data) // 2
        self._push(data)

    def output_text(self, text: str, finished: bool | None) -> None:
        """A fragment of the model's words (aligned with the audio received so far)."""
        self._answer_starts()
        self._flush_user_text()
        self._pieces.append((self._turn_frames, text))
        self._emit("output_transcript", text, finished=bool(finished),
                   aggregate="".join(t for _, t in self._pieces))

    def input_text(self, text: str, finished: bool | None) -> None:
        """A fragment of the user's words; ``finished`` closes the utterance."""
        self._input_parts.append(text)
        self._emit("input_transcript", text, finished=bool(finished), aggregate="".join(self._input_parts))
        if finished:
            self._flush_user_text()

    def user_text(self, text: str) -> None:
        """A typed user turn, for the transcript (after any spoken words before it)."""
        self._flush_user_text()
        self.transcript.append(("user", text))

    def interrupted(self) -> None:
        """Barge-in: flush at once, cut the transcript where the listener stopped hearing."""
        # Cancel the chunk in flight before the flush, so nothing queued before the flush
        # can reach the engine after it.
        self._fifo.clear()
        if self._player is not None:
            self._player.cancel()  # lands at its await: the chunk in flight is not queued
            self._player = None
        report = self.engine.interrupt()
        self.start()
        self._flush_user_text()
        full = "".join(t for _, t in self._pieces)
        heard = "".join(t for at, t in self._pieces if at <= report.heard_frames)
        if heard:
            self.transcript.append(("model", heard + " ..."))
        self._reset_turn()
        self._after_interrupt = True
        self._emit("interrupted", heard, heard_ms=report.heard_ms, received_ms=report.received_ms,
                   discarded_ms=report.discarded_ms, full_text=full)

    def generation_complete(self) -> None:
        """All of the answer's audio has arrived: its tail need not wait for the prebuffer."""
        if self.answer_in_progress:
            self._push(_END_TURN)
        self._emit("generation_complete")

    def turn_complete(self) -> None:
        """The end of a turn: of the interrupted one (if nothing came since), else of the answer."""
        self._flush_user_text()
        if self._after_interrupt and not self.answer_in_progress:
            self._after_interrupt = False
            self._emit("turn_complete", "", interrupted=True)
            return
        text = self._close_answer()
        self._emit("turn_complete", text, interrupted=False)

    def connection_ended(self) -> None:
        """The socket went away: what was received keeps playing; no turn stays open."""
        if self.answer_in_progress:
            text = self._close_answer()
            self._emit("turn_complete", text, interrupted=False, connection_ended=True)
        self._after_interrupt = False
        self._flush_user_text()

    def _close_answer(self) -> str:
        text = "".join(t for _, t in self._pieces)
        if text:
            self.transcript.append(("model", text))
        if self.answer_in_progress and (not self._fifo or self._fifo[-1] is not _END_TURN):
            self._push(_END_TURN)
        self._reset_turn()
        return text

    def _reset_turn(self) -> None:
        self._pieces.clear()
        self._turn_frames = 0
        self._odd_byte = b""
        self.answer_in_progress = False

    def _push(self, item: Any) -> None:
        self._fifo.append(item)
        self._wake.set()

    def _flush_user_text(self) -> None:
        """Moves the user's transcribed words into the transcript, before the model's reply."""
        if self._input_parts:
            text = "".join(self._input_parts).strip()
            self._input_parts.clear()
            if text:
                self.transcript.append(("user", text))


def _rate_of(mime_type: str) -> int:
    """The ``rate=`` of an ``audio/pcm`` mime type (24 kHz when absent or unreadable)."""
    for param in mime_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            with contextlib.suppress(ValueError):
                rate = int(value.strip())
                if 8_000 <= rate <= 192_000:
                    return rate
    return PLAY_RATE_HZ
