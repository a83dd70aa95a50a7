"""`LiveConversation`: one spoken conversation with a Gemini Live model over google-genai.

Mic chunks from the :class:`~duplex.AudioEngine` go out as ``audio/pcm;rate=16000`` as they
come; video frames go out on their own task; the model's audio goes to ``play()``; on
``interrupted`` playback is flushed at once (never on ``turn_complete``) and the model's
transcript is cut where the listener stopped hearing it. ``go_away`` and dropped connections
resume the session with the latest resumption handle, and no captured audio is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .extras import require

require("duplex.live", "live")

import websockets  # noqa: E402 - after the check that says which extra to install
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .engine import AudioEngine
from .vad import EnergyVad
from .video.framing import media_resolution_enum

__all__ = ["DEFAULT_MODEL", "LiveConfig", "LiveConversation", "LiveEvent", "LiveSessionError"]

#: A current native-audio Live model; override with ``model=`` or ``$DUPLEX_MODEL``.
DEFAULT_MODEL = os.environ.get("DUPLEX_MODEL", "gemini-3.8-live")

#: Close codes after which the session is resumed (server-side faults and lost sockets).
RETRYABLE_CLOSE_CODES = {1001, 1006, 1011, 1012, 1013, 1014}

_CLOSE_HINTS = {
    1007: "the service rejected a message as invalid (a bug in the client or an unsupported option)",
    1008: "the model or API version is not available for the Live API (check --model)",
    1011: "the service had an internal error or the quota is exhausted",
}


class LiveSessionError(Exception):
    """The Live session ended and could not be resumed; the message says why and what to do."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LiveEvent:
    """Something that happened in the conversation, for user interfaces and tests.

    ``kind`` is one of: ``connected``, ``reconnecting``, ``go_away``, ``input_transcript``,
    ``output_transcript``, ``interrupted`` (``text`` = the model's words the listener heard;
    ``data`` has ``heard_ms``, ``received_ms``, ``discarded_ms``, ``full_text``),
    ``generation_complete``, ``turn_complete`` (``text`` = the turn's transcript),
    ``resumption_handle``, ``usage``, ``video`` (a frame was sent), ``video_opened``,
    ``video_ended``, ``video_error``, ``stats`` (``data`` = the
    engine's stats), ``error``, ``closed``.
    """

    kind: str
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.monotonic)


@dataclass
class LiveConfig:
    """Settings of a Live session.

    ``automatic_vad`` is passed through as the SDK's ``AutomaticActivityDetection`` fields
    (e.g. ``{"silence_duration_ms": 500, "start_of_speech_sensitivity": "START_SENSITIVITY_LOW"}``);
    ``manual_activity=True`` turns server VAD off and sends ``activity_start`` /
    ``activity_end`` around each utterance found by :class:`duplex.vad.EnergyVad`.
    ``compression`` defaults to on whenever video is sent (audio+video sessions are
    otherwise limited to about 2 minutes).
    """

    model: str = DEFAULT_MODEL
    voice: str | None = None
    media_resolution: str | None = None
    system_instruction: str | None = None
    input_transcription: bool = True
    output_transcription: bool = True
    session_resumption: bool = True
    compression: bool | None = None
    automatic_vad: dict[str, Any] | None = None
    manual_activity: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    max_reconnects: int = 5
    stats_interval_s: float = 1.0


class _GoAway(Exception):
    """Internal: the server announced the end of this connection."""


class LiveConversation:
    """Runs one Live conversation between an :class:`AudioEngine` and a Live model.

    Parameters
    ----------
    engine
        A started engine (mic chunks are read from it, model audio played into it).
    client
        A ``google.genai.Client`` (the real service, or the local emulator's client).
    config
        :class:`LiveConfig`.
    video
        Optional ``duplex.video.VideoStreamer`` whose frames are sent at its rate.

    Use ``await conversation.run(duration)``; read :meth:`events` from another task.
    """

    def __init__(
        self,
        engine: AudioEngine,
        client: genai.Client,
        config: LiveConfig | None = None,
        *,
        video: Any | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.config = config or LiveConfig()
        self.video = video
        self.resumption_handle: str | None = None
        self.transcript: list[tuple[str, str]] = []
        self.chunks_sent = 0
        self.frames_sent = 0
        self.connections = 0
        self._events: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._pending_chunk: bytes | None = None
        self._dropping_interrupted_turn = False
        self._turn_audio_frames = 0
        self._turn_pieces: list[tuple[int, str]] = []
        self._input_text: list[str] = []
        self._activity = EnergyVad() if self.config.manual_activity else None

    # -- public ------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Every event, in order, until the conversation ends (the last one is ``closed``)."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def stop(self) -> None:
        """Ends the conversation: :meth:`run` returns after closing the socket."""
        self._stopping.set()

    async def run(self, duration: float | None = None) -> None:
        """Talks until :meth:`stop`, ``duration`` seconds, or an unrecoverable error
        (:class:`LiveSessionError`, after an ``error`` event)."""
        timer = None
        if duration is not None:
            timer = asyncio.get_running_loop().call_later(duration, self._stopping.set)
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self._run_connection()
                    failures = 0
                    continue
                except _GoAway:
                    failures = 0
                    self._emit("reconnecting", "go_away", handle=self.resumption_handle)
                    continue
                except genai_errors.APIError as exc:
                    code = getattr(exc, "code", None)
                    reason = getattr(exc, "details", None) or getattr(exc, "message", None) or str(exc)
                    cause: BaseException = exc
                except websockets.exceptions.ConnectionClosed as exc:
                    code = exc.rcvd.code if exc.rcvd is not None else 1006
                    reason = exc.rcvd.reason if exc.rcvd is not None else "no close frame"
                    cause = exc
                except (OSError, ConnectionError) as exc:
                    if self.connections == 0:
                        raise self._fail(
                            f"cannot reach the Live API at {self._base_url()}: {exc}; check the "
                            "network, the base URL and the certificate (SSL_CERT_FILE)"
                        ) from exc
                    code, reason, cause = 1006, str(exc), exc
                if code not in RETRYABLE_CLOSE_CODES or failures >= self.config.max_reconnects:
                    hint = _CLOSE_HINTS.get(code or 0)
                    message = f"the Live session was closed with code {code}: {reason}" + (f" ({hint})" if hint else "")
                    if failures:
                        message += f"; gave up after {failures} reconnects"
                    raise self._fail(message, code) from cause
                failures += 1
                self._emit("reconnecting", f"connection closed ({code}: {reason})", code=code,
                           handle=self.resumption_handle, attempt=failures)
                await asyncio.sleep(min(0.2 * 2 ** (failures - 1), 5.0))
        finally:
            if timer is not None:
                timer.cancel()
            self._emit("closed")
            self._events.put_nowait(None)

    # -- connection --------------------------------------------------------------------

    def _base_url(self) -> str:
        options = getattr(getattr(self.client, "_api_client", None), "_http_options", None)
        return getattr(options, "base_url", None) or "the Live API"

    def _fail(self, message: str, code: int | None = None) -> LiveSessionError:
        self._emit("error", message, code=code)
        return LiveSessionError(message, code)

    def connect_config(self) -> types.LiveConnectConfig:
        """The ``LiveConnectConfig`` of the next connection (with the latest handle)."""
        c = self.config
        speech = None
        if c.voice:
            speech = types.SpeechConfig(
                voice_config=types.VoiceConfig(
                    prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=c.voice)
                )
            )
        compression = c.compression if c.compression is not None else self.video is not None
        vad: types.RealtimeInputConfig | None = None
        if c.manual_activity:
            vad = types.RealtimeInputConfig(
                automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
            )
        elif c.automatic_vad:
            vad = types.RealtimeInputConfig(
                automatic_activity_detection=types.AutomaticActivityDetection(**c.automatic_vad)
            )
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            speech_config=speech,
            media_resolution=media_resolution_enum(c.media_resolution) if c.media_resolution else None,
            system_instruction=c.system_instruction,
            input_audio_transcription=types.AudioTranscriptionConfig() if c.input_transcription else None,
            output_audio_transcription=types.AudioTranscriptionConfig() if c.output_transcription else None,
            session_resumption=(
                types.SessionResumptionConfig(handle=self.resumption_handle)
                if c.session_resumption
                else None
            ),
            context_window_compression=(
                types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow())
                if compression
                else None
            ),
            realtime_input_config=vad,
            http_options=types.HttpOptions(headers=c.headers) if c.headers else None,
        )

    async def _run_connection(self) -> None:
        resumed = self.resumption_handle is not None
        async with self.client.aio.live.connect(model=self.config.model, config=self.connect_config()) as session:
            self.connections += 1
            self._emit("connected", "resumed" if resumed else "new", resumed=resumed,
                       handle=self.resumption_handle, connection=self.connections)
            stop_sending = asyncio.Event()
            receive = asyncio.create_task(self._receive(session), name="duplex-live-receive")
            send = asyncio.create_task(self._send_audio(session, stop_sending), name="duplex-live-send")
            tasks = {receive, send}
            if self.video is not None:
                tasks.add(asyncio.create_task(self._send_video(session, stop_sending), name="duplex-live-video"))
            ticker = asyncio.create_task(self._tick_stats(), name="duplex-live-stats")
            stopping = asyncio.create_task(self._stopping.wait())
            try:
                done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Let the senders finish the chunk in hand (so no captured audio is lost),
                # then tear everything down before the socket closes.
                stop_sending.set()
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.gather(send, return_exceptions=True), 1.0)
                for task in (*tasks, ticker, stopping):
                    task.cancel()
                await asyncio.gather(*tasks, ticker, stopping, return_exceptions=True)
            # The receiver's error says why the connection ended (a close code); a sender that
            # hit the closed socket first only knows that it was closed.
            for task in sorted(done, key=lambda t: t is not receive):
                if task is not stopping and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    # -- sending -----------------------------------------------------------------------

    async def _send_audio(self, session: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self._pending_chunk is None:
                self._pending_chunk = await self.engine.read_async(timeout=0.05)
                if self._pending_chunk is None:
                    continue
            chunk = self._pending_chunk
            if self._activity is not None:
                for change in self._activity.feed(np.frombuffer(chunk, dtype="<i2")):
                    if change.kind == "start":
                        await session.send_realtime_input(activity_start=types.ActivityStart())
                    else:
                        await session.send_realtime_input(activity_end=types.ActivityEnd())
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
            # Only a chunk that went out is done with; a failed send is retried on the
            # resumed connection, so no captured audio is lost across a reconnect.
            self._pending_chunk = None
            self.chunks_sent += 1

    async def _send_video(self, session: Any, stop: asyncio.Event) -> None:
        # Frames come from the streamer's own worker thread; encoding never runs here.
        async for frame in self.video.frames():
            self._forward_video_events()
            if stop.is_set():
                return
            await session.send_realtime_input(video=types.Blob(data=frame.jpeg, mime_type="image/jpeg"))
            self.frames_sent += 1
            self._emit("video", f"{frame.width}x{frame.height}", width=frame.width, height=frame.height,
                       bytes=len(frame.jpeg), sequence=frame.sequence)
        # The source ended or failed: say why, and keep the audio session going.
        self._forward_video_events()
        await stop.wait()

    def _forward_video_events(self) -> None:
        for event in self.video.drain_events():
            kind = {"opened": "video_opened", "ended": "video_ended"}.get(event.kind, "video_error")
            self._emit(kind, event.message)

    async def _tick_stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self._emit("stats", data_from=self.engine.stats().as_dict())

    # -- receiving ---------------------------------------------------------------------

    async def _receive(self, session: Any) -> None:
        while True:
            # receive() ends at every turn_complete; keep listening.
            async for message in session.receive():
                await self._handle(message)

    async def _handle(self, message: types.LiveServerMessage) -> None:
        content = message.server_content
        if content is not None:
            await self._handle_content(content)
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self.resumption_handle = update.new_handle
            self._emit("resumption_handle", update.new_handle)
        if message.usage_metadata is not None:
            self._emit("usage", total_tokens=message.usage_metadata.total_token_count)
        if message.go_away is not None:
            self._emit("go_away", str(message.go_away.time_left or ""), time_left=message.go_away.time_left)
            if self.config.session_resumption:
                # Reconnect now, well before the deadline; the old socket closes first.
                raise _GoAway()

    async def _handle_content(self, content: types.LiveServerContent) -> None:
        if content.interrupted:
            # Barge-in: flush first, talk later.
            report = self.engine.interrupt()
            self._flush_user_text()
            self._dropping_interrupted_turn = True
            full = "".join(text for _, text in self._turn_pieces)
            heard_frames = report.heard_frames
            heard = "".join(text for at, text in self._turn_pieces if at <= heard_frames)
            if heard:
                self.transcript.append(("model", heard + " ..."))
            self._turn_pieces.clear()
            self._turn_audio_frames = 0
            self._emit("interrupted", heard, heard_ms=report.heard_ms, received_ms=report.received_ms,
                       discarded_ms=report.discarded_ms, full_text=full)
        if content.input_transcription is not None and content.input_transcription.text:
            self._input_text.append(content.input_transcription.text)
            self._emit("input_transcript", content.input_transcription.text)
        if content.output_transcription is not None and content.output_transcription.text:
            text = content.output_transcription.text
            self._flush_user_text()
            if not self._dropping_interrupted_turn:
                self._turn_pieces.append((self._turn_audio_frames, text))
                self._emit("output_transcript", text)
        if content.model_turn is not None and content.model_turn.parts:
            for part in content.model_turn.parts:
                blob = part.inline_data
                if blob is None or not blob.data or not (blob.mime_type or "").startswith("audio/pcm"):
                    continue
                if self._dropping_interrupted_turn:
                    continue  # late audio of the interrupted turn must not play
                await self.engine.play_async(blob.data)
                self._turn_audio_frames += len(blob.data) // 2
        if content.generation_complete:
            # Gemini holds turn_complete until it thinks playback is over; the tail must
            # not wait for the prebuffer.
            if not self._dropping_interrupted_turn:
                self.engine.end_turn()
            self._emit("generation_complete")
        if content.turn_complete:
            self._flush_user_text()
            text = "".join(text for _, text in self._turn_pieces)
            if text:
                self.transcript.append(("model", text))
            if not self._dropping_interrupted_turn:
                self.engine.end_turn()
            self._dropping_interrupted_turn = False
            self._turn_pieces.clear()
            self._turn_audio_frames = 0
            self._emit("turn_complete", text)

    def _flush_user_text(self) -> None:
        """Moves the user's transcribed words into the transcript, before the model's reply."""
        if self._input_text:
            self.transcript.append(("user", "".join(self._input_text)))
            self._input_text.clear()

    def _emit(self, kind: str, text: str = "", data_from: dict[str, Any] | None = None, **data: Any) -> None:
        self._events.put_nowait(LiveEvent(kind, text, data_from if data_from is not None else data))
