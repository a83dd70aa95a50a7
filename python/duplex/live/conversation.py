"""`LiveConversation`: one spoken conversation with a Gemini Live model over google-genai.

Mic chunks from the :class:`~duplex.AudioEngine` go out as ``audio/pcm;rate=16000`` as they
come; video frames and typed text go out on their own tasks; the model's audio goes to the
engine through :class:`~duplex.live.output.ModelOutput` (flushed at once on
``interrupted``; what arrives afterwards is the next answer and plays). ``goAway`` lets the
answer in progress finish within the time left, then the session resumes on a new
connection with the latest handle; dropped connections resume the same way, with backoff.
No captured audio is lost across a reconnect. Every network wait is bounded, a malformed
server message is skipped and counted (or ends the session with a clear
:class:`LiveSessionError`), and function calls run through :mod:`duplex.live.tools`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import websockets
from google import genai
from google.genai import types

from ..engine import AudioEngine
from ..errors import DeviceError, DuplexError
from ..vad import EnergyVad
from ..video.framing import media_resolution_enum
from . import transport as net
from .config import EventKind, LiveConfig, LiveEvent, LiveSessionError
from .output import ModelOutput
from .tools import ToolRunner, ToolSet

__all__ = ["LiveConversation", "RETRYABLE_CLOSE_CODES"]

logger: logging.Logger = logging.getLogger(__name__)

#: Close codes after which the session is resumed (server-side faults and lost sockets).
RETRYABLE_CLOSE_CODES = {1001, 1006, 1011, 1012, 1013, 1014}

_CLOSE_HINTS = {
    1007: "the service rejected a message as invalid (a bug in the client or an unsupported option)",
    1008: "the model or API version is not available for the Live API (check --model)",
    1011: "the service had an internal error or the quota is exhausted",
}

#: A connection that gets goAway sooner than this after connecting counts as a repeat
#: and meets a growing delay before the next connection.
_QUICK_GO_AWAY_S = 10.0
#: After the answer in progress at a goAway ends, how long to wait for the session
#: resumption handle that covers it.
_HANDLE_WAIT_S = 0.5


class _Reconnect(Exception):
    """Internal: this connection is done; resume on a new one (after a goAway)."""


class _SetupTimeout(Exception):
    """Internal: no setupComplete within the connect timeout."""


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

    Use ``await conversation.run(duration)``; read :meth:`events` from another task;
    :meth:`send_text`, :meth:`mute` and :meth:`stop` may be called at any time.
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
        self.config: LiveConfig = config or LiveConfig()
        self.video = video
        self.tools: ToolSet = ToolSet(self.config.tools)
        self.resumption_handle: str | None = None
        self.transcript: list[tuple[str, str]] = []
        self.chunks_sent: int = 0
        self.frames_sent: int = 0
        #: Video frames taken from the streamer but not sent because their connection ended.
        self.frames_dropped: int = 0
        self.texts_sent: int = 0
        self.connections: int = 0
        self.malformed_messages: int = 0
        self._events: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._pending_chunk: bytes | None = None
        self._outbox: collections.deque[tuple[str, bool]] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._output = ModelOutput(engine, self._emit, self.transcript)
        self._runner = ToolRunner(self.tools, self._emit)
        self._activity = EnergyVad() if self.config.manual_activity else None
        self._reconnect = asyncio.Event()
        self._go_away_task: asyncio.Task[None] | None = None
        self._handle_timer: asyncio.TimerHandle | None = None
        self._go_away_pending = False
        self._go_away_seen = False
        self._await_handle = False
        self._malformed_in_a_row = 0
        self._last_message_at = 0.0
        self._quick_go_aways = 0
        self._device_lost = False

    # -- public ------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[LiveEvent]:
        """Every event, in order, until the conversation ends (the last one is ``closed``)."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def stop(self) -> None:
        """Ends the conversation: :meth:`run` returns within about a second."""
        self._stopping.set()

    def send_text(self, text: str, *, realtime: bool = False) -> None:
        """Sends a typed user turn. By default as client content (a complete user turn the
        model answers, interrupting any answer in progress); with ``realtime=True`` as
        realtime input text, which flows with the audio. Queued while reconnecting."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"send_text needs a non-empty string, got {text!r}")
        self._outbox.append((text, realtime))
        self._outbox_ready.set()

    def mute(self) -> None:
        """Mutes the microphone (see :meth:`AudioEngine.mute`); after a second of it the
        model is told the audio stream ended, so it answers what it heard."""
        self.engine.mute()
        self._emit("muted")

    def unmute(self) -> None:
        """Unmutes the microphone; nothing captured while muted is sent."""
        self.engine.unmute()
        self._emit("unmuted")

    @property
    def muted(self) -> bool:
        """Whether the microphone is muted."""
        return self.engine.muted

    async def run(self, duration: float | None = None) -> None:
        """Talks until :meth:`stop`, ``duration`` seconds, or an unrecoverable error
        (:class:`LiveSessionError`, after an ``error`` event). Returns within about a
        second of ``duration`` whatever the server does."""
        loop = asyncio.get_running_loop()
        timer = loop.call_later(duration, self._stopping.set) if duration is not None else None
        failures = 0
        self._output.start()
        try:
            while not self._stopping.is_set():
                started = loop.time()
                try:
                    await self._run_connection()
                    failures = 0
                    continue
                except _Reconnect:
                    failures = 0
                    lived = loop.time() - started
                    self._quick_go_aways = self._quick_go_aways + 1 if lived < _QUICK_GO_AWAY_S else 0
                    delay = min(0.25 * 2 ** (self._quick_go_aways - 1), 8.0) if self._quick_go_aways else 0.0
                    self._emit("reconnecting", "go_away", handle=self.resumption_handle, delay_s=delay)
                    await self._sleep_unless_stopped(delay)
                    continue
                except _SetupTimeout:
                    code, reason = None, (
                        f"the server accepted the connection but sent no setupComplete within "
                        f"{self.config.connect_timeout_s:g} s")
                    cause: BaseException | None = None
                    if self.connections == 0:
                        raise self._fail(f"{reason}; is {self._base_url()} a Live API endpoint?") from None
                except net.MalformedMessage as exc:
                    raise self._fail(f"the Live session ended: {exc}") from None
                except LiveSessionError:
                    raise
                except net.ConnectionLost as exc:
                    code, reason, cause = 1006, str(exc), exc
                except Exception as exc:
                    code, reason = self._close_of(exc)
                    cause = exc
                    if code is None:
                        if isinstance(exc, (OSError, ConnectionError)) and self.connections == 0:
                            raise self._fail(
                                f"cannot reach the Live API at {self._base_url()}: {exc}; check the "
                                "network, the base URL and the certificate (SSL_CERT_FILE)") from exc
                        if not isinstance(exc, (OSError, ConnectionError)):
                            raise
                        code = 1006
                if self._stopping.is_set():
                    break
                retryable = code is None or code in RETRYABLE_CLOSE_CODES
                if not retryable or failures >= self.config.max_reconnects:
                    raise self._fail(self._explain_close(code, reason, failures), code) from cause
                failures += 1
                self._emit("reconnecting", f"connection closed ({code}: {reason})", code=code,
                           handle=self.resumption_handle, attempt=failures)
                await self._sleep_unless_stopped(min(0.2 * 2 ** (failures - 1), 5.0))
        finally:
            if timer is not None:
                timer.cancel()
            await self._runner.aclose()
            self._output.connection_ended()
            await self._output.aclose()
            self._emit("closed")
            self._events.put_nowait(None)

    # -- connection --------------------------------------------------------------------

    def _base_url(self) -> str:
        options = getattr(getattr(self.client, "_api_client", None), "_http_options", None)
        return getattr(options, "base_url", None) or "the Live API"

    def _fail(self, message: str, code: int | None = None) -> LiveSessionError:
        self._emit("error", message, code=code)
        return LiveSessionError(message, code)

    def _close_of(self, exc: BaseException) -> tuple[int | None, str]:
        """The close code and reason an exception reports (None when it is no close)."""
        if net.is_close_error(exc):
            reason = getattr(exc, "details", None) or getattr(exc, "message", None) or str(exc)
            return exc.code, str(reason)  # type: ignore[attr-defined]
        if isinstance(exc, websockets.exceptions.ConnectionClosed):
            if exc.rcvd is not None:
                return exc.rcvd.code, exc.rcvd.reason
            return 1006, "no close frame"
        return None, str(exc)

    def _explain_close(self, code: int | None, reason: str, failures: int) -> str:
        if code is None:
            message = reason
        elif self._go_away_seen and not self.config.session_resumption:
            message = (f"the Live session was closed with code {code}: {reason} (after goAway: the "
                       "connection reached its time limit, and session resumption is off, so the "
                       "conversation could not continue on a new connection; use "
                       "LiveConfig(session_resumption=True))")
        else:
            hint = _CLOSE_HINTS.get(code or 0)
            message = f"the Live session was closed with code {code}: {reason}" + (f" ({hint})" if hint else "")
        if failures:
            message += f"; gave up after {failures} reconnects"
        return message

    async def _sleep_unless_stopped(self, delay: float) -> None:
        if delay > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def connect_config(self) -> types.LiveConnectConfig:
        """The ``LiveConnectConfig`` of the next connection (with the latest handle)."""
        c = self.config
        speech = None
        if c.voice:
            speech = types.SpeechConfig(
                voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=c.voice))
            )
        compression = c.compression if c.compression is not None else self.video is not None
        vad: types.RealtimeInputConfig | None = None
        if c.manual_activity:
            vad = types.RealtimeInputConfig(automatic_activity_detection=types.AutomaticActivityDetection(disabled=True))
        elif c.automatic_vad:
            vad = types.RealtimeInputConfig(
                automatic_activity_detection=types.AutomaticActivityDetection(**c.automatic_vad))
        return types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            speech_config=speech,
            media_resolution=media_resolution_enum(c.media_resolution) if c.media_resolution else None,
            system_instruction=c.system_instruction,
            input_audio_transcription=types.AudioTranscriptionConfig() if c.input_transcription else None,
            output_audio_transcription=types.AudioTranscriptionConfig() if c.output_transcription else None,
            session_resumption=(
                types.SessionResumptionConfig(handle=self.resumption_handle) if c.session_resumption else None
            ),
            context_window_compression=(
                types.ContextWindowCompressionConfig(sliding_window=types.SlidingWindow()) if compression else None
            ),
            realtime_input_config=vad,
            tools=self.tools.declarations(),
            http_options=types.HttpOptions(headers=c.headers) if c.headers else None,
        )

    async def _connect(self) -> tuple[Any, Any] | None:
        """Opens a session within the connect timeout; None when stopped meanwhile."""
        cm = self.client.aio.live.connect(model=self.config.model, config=self.connect_config())
        entering = asyncio.create_task(cm.__aenter__(), name="duplex-live-connect")
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({entering, stopping}, timeout=self.config.connect_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if entering.done():
            try:
                session = entering.result()  # raises what connect() raised
            except Exception as exc:
                if self._close_of(exc)[0] is not None or isinstance(exc, (OSError, ConnectionError)):
                    raise
                kind, detail, _ = net.classify_receive_error(exc)
                raise self._fail(f"the server answered the setup with {detail.removeprefix('a ')}, "
                                 "not setupComplete; is it a Live API endpoint?") from exc
            if getattr(session, "setup_complete", True) is None:
                await self._close(cm, session)
                raise self._fail("the server's first message was not setupComplete, so the session "
                                 "was never set up (a Live API server always confirms the setup first)")
            if self._stopping.is_set():
                await self._close(cm, session)
                return None
            return cm, session
        # Stopped, or no setupComplete in time: drop the half-open socket so that the
        # SDK's closing handshake cannot hang on a frozen peer.
        net.abort_socket(net.pending_socket(cm))
        entering.cancel()
        if not await net.wait_bounded(entering, self.config.close_timeout_s):
            entering.add_done_callback(lambda t: t.cancelled() or t.exception())
        if self._stopping.is_set():
            return None
        raise _SetupTimeout()

    async def _close(self, cm: Any, session: Any) -> None:
        """Leaves the SDK session within ``close_timeout_s`` (then drops the socket)."""
        leaving = asyncio.create_task(cm.__aexit__(None, None, None), name="duplex-live-close")
        if not await net.wait_bounded(leaving, self.config.close_timeout_s):
            net.abort_socket(net.socket_of(session))
            if not await net.wait_bounded(leaving, 0.5):
                leaving.cancel()
        if leaving.done() and not leaving.cancelled():
            leaving.exception()  # a close error after the session ended says nothing new

    async def _run_connection(self) -> None:
        resumed = self.resumption_handle is not None
        opened = await self._connect()
        if opened is None:
            return
        cm, session = opened
        self.connections += 1
        self._reconnect.clear()
        self._go_away_pending = self._go_away_seen = self._await_handle = False
        self._malformed_in_a_row = 0
        self._last_message_at = time.monotonic()
        self._emit("connected", "resumed" if resumed else "new", resumed=resumed,
                   handle=self.resumption_handle, connection=self.connections)
        stop_sending = asyncio.Event()
        receive = asyncio.create_task(self._receive(session), name="duplex-live-receive")
        send = asyncio.create_task(self._send_audio(session, stop_sending), name="duplex-live-send")
        texts = asyncio.create_task(self._send_texts(session), name="duplex-live-text")
        alive = asyncio.create_task(self._keepalive(session), name="duplex-live-keepalive")
        tasks = {receive, send, texts, alive}
        if self.video is not None:
            tasks.add(asyncio.create_task(self._send_video(session, stop_sending), name="duplex-live-video"))
        ticker = asyncio.create_task(self._tick_stats(), name="duplex-live-stats")
        devices = asyncio.create_task(self._watch_devices(), name="duplex-live-devices")
        stopping = asyncio.create_task(self._stopping.wait())
        reconnect = asyncio.create_task(self._reconnect.wait())
        try:
            done, _ = await asyncio.wait({*tasks, stopping, reconnect}, return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if t in tasks and not t.cancelled() and t.exception() is not None]
            if failed and receive not in done and await net.wait_bounded(receive, 0.2):
                done = {*done, receive}  # the receiver knows the close code
        finally:
            # Let the senders finish the chunk in hand (so no captured audio is lost),
            # then tear everything down before the socket closes.
            stop_sending.set()
            await net.wait_bounded(send, min(0.25, self.config.close_timeout_s))
            for task in (*tasks, ticker, devices, stopping, reconnect):
                task.cancel()
            await asyncio.gather(*tasks, ticker, devices, stopping, reconnect, return_exceptions=True)
            if self._go_away_task is not None:
                self._go_away_task.cancel()
            if self._handle_timer is not None:
                self._handle_timer.cancel()
                self._handle_timer = None
            self._runner.cancel(None, "the connection ended")
            self._output.connection_ended()
            await self._close(cm, session)
        # The receiver's error says why the connection ended (a close code); a sender that
        # hit the closed socket first only knows that it was closed.
        for task in sorted(done, key=lambda t: t is not receive):
            if task in tasks and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if reconnect in done and not self._stopping.is_set():
            raise _Reconnect()

    # -- sending -----------------------------------------------------------------------

    async def _send_audio(self, session: Any, stop: asyncio.Event) -> None:
        quiet_limit = self.config.audio_stream_end_after_s
        last_sent = time.monotonic()
        stream_open = False
        while not stop.is_set():
            if self._pending_chunk is None:
                try:
                    self._pending_chunk = await self.engine.read_async(timeout=0.05)
                except DeviceError as exc:
                    # The microphone went away (unplugged, sound server restarted): the
                    # engine reopens it; the session goes on meanwhile.
                    if not self._device_lost:
                        self._device_lost = True
                        self._emit("device_lost", str(exc))
                    await asyncio.sleep(0.1)
                if self._pending_chunk is not None and self._device_lost:
                    self._device_lost = False
                    self._emit("device_restored")
                if self._pending_chunk is None:
                    if stream_open and time.monotonic() - last_sent > quiet_limit:
                        # Muted or paused for more than a second: let the model answer what
                        # it heard instead of waiting for more audio.
                        stream_open = False
                        await self._end_audio_stream(session)
                    continue
            chunk = self._pending_chunk
            if self._activity is not None:
                for change in self._activity.feed(np.frombuffer(chunk, dtype="<i2")):
                    if change.kind == "start":
                        await session.send_realtime_input(activity_start=types.ActivityStart())
                    else:
                        await session.send_realtime_input(activity_end=types.ActivityEnd())
            if net.transport_closing(session):
                # The socket is gone (reset by the peer) or closing: keep the chunk for the
                # next connection rather than write it into a dead transport.
                raise net.ConnectionLost("the connection was lost while sending audio")
            await session.send_realtime_input(audio=types.Blob(data=chunk, mime_type="audio/pcm;rate=16000"))
            # Only a chunk that went out is done with; a failed send is retried on the
            # resumed connection, so no captured audio is lost across a reconnect.
            self._pending_chunk = None
            self.chunks_sent += 1
            last_sent = time.monotonic()
            stream_open = True
            # A backlog (after a reconnect) is sent chunk by chunk without waiting: yield
            # between chunks so that the receiver (an `interrupted`) and a lost socket's
            # callbacks run, instead of hundreds of writes into a socket already reset.
            await asyncio.sleep(0)

    async def _end_audio_stream(self, session: Any) -> None:
        if self._activity is not None:
            # Manual activity: the end of the stream is the end of the utterance.
            if self._activity.force_end() is not None:
                await session.send_realtime_input(activity_end=types.ActivityEnd())
        else:
            await session.send_realtime_input(audio_stream_end=True)
        self._emit("audio_stream_end", muted=self.engine.muted)

    async def _send_texts(self, session: Any) -> None:
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            text, realtime = self._outbox[0]
            if realtime:
                await session.send_realtime_input(text=text)
            else:
                await session.send_client_content(
                    turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True)
            self._outbox.popleft()  # sent: a failed send is retried on the next connection
            self.texts_sent += 1
            self._output.user_text(text)
            self._emit("text_sent", text, realtime=realtime)

    async def _send_video(self, session: Any, stop: asyncio.Event) -> None:
        # Frames come from the streamer's own worker thread; encoding never runs here.
        assert self.video is not None
        async for frame in self.video.frames():
            self._forward_video_events()
            if stop.is_set():
                self.frames_dropped += 1  # taken as the connection ended: not sent
                return
            try:
                await session.send_realtime_input(video=types.Blob(data=frame.jpeg, mime_type="image/jpeg"))
            except BaseException:
                # The connection ended under this frame; the next one supersedes it anyway.
                self.frames_dropped += 1
                raise
            self.frames_sent += 1
            self._emit("video", f"{frame.width}x{frame.height}", width=frame.width, height=frame.height,
                       bytes=len(frame.jpeg), sequence=frame.sequence)
        # The source ended or failed: say why, and keep the audio session going.
        self._forward_video_events()
        await stop.wait()

    def _forward_video_events(self) -> None:
        assert self.video is not None
        for event in self.video.drain_events():
            kind: EventKind = "video_opened" if event.kind == "opened" else (
                "video_ended" if event.kind == "ended" else "video_error")
            self._emit(kind, event.message)

    async def _watch_devices(self) -> None:
        """Turns the engine's device events into ``device_lost`` / ``device_restored``.

        The engine's supervisor sees a dead device first (and also an output-only loss that
        no read would notice); the capture path's exceptions stay as a second witness, and
        the ``_device_lost`` flag keeps one event per transition whoever saw it first."""
        while True:
            event = await self.engine.next_device_event_async(None)
            if event is None:
                continue
            lost = event.kind == "device_lost"
            if lost == self._device_lost:
                continue  # the capture path already told
            self._device_lost = lost
            self._emit(event.kind, event.message, output_device=event.output_device,
                       input_device=event.input_device, outage_ms=event.outage_ms,
                       attempts=event.attempts)

    async def _tick_stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval_s)
            self._emit("stats", "", self.engine.stats().as_dict())

    async def _keepalive(self, session: Any) -> None:
        """Declares the connection dead when neither a pong nor any message comes for
        ``keepalive_timeout_s`` after a ping."""
        ws = net.socket_of(session)
        if ws is None or not hasattr(ws, "ping"):
            await asyncio.Event().wait()  # no socket to ping (a test double): nothing to watch
        assert ws is not None
        interval, limit = self.config.keepalive_interval_s, self.config.keepalive_timeout_s
        while True:
            await asyncio.sleep(interval)
            sent = time.monotonic()
            pong = await ws.ping()
            while True:
                done, _ = await asyncio.wait({pong}, timeout=min(interval, limit))
                if done or self._last_message_at > sent:
                    break
                if time.monotonic() - sent >= limit:
                    raise net.ConnectionLost(
                        f"the server answered no keepalive ping and sent nothing for {limit:g} s")

    # -- receiving ---------------------------------------------------------------------

    async def _receive(self, session: Any) -> None:
        while True:
            try:
                # receive() ends at every turn_complete; keep listening.
                async for message in session.receive():
                    self._last_message_at = time.monotonic()
                    self._dispatch(session, message)
                self._output.check()
            except Exception as exc:
                if net.is_close_error(exc) or isinstance(exc, (websockets.exceptions.ConnectionClosed, DuplexError)):
                    raise
                self._last_message_at = time.monotonic()
                kind, detail, fatal = net.classify_receive_error(exc)
                self._skip(kind, detail, fatal)

    def _skip(self, kind: str, detail: str, fatal: bool = False) -> None:
        """Counts an unusable server message; ends the session when it must."""
        self.malformed_messages += 1
        self._malformed_in_a_row += 1
        logger.warning("Live server message skipped (%s): %s", kind, detail)
        self._emit("malformed", detail, kind=kind, count=self.malformed_messages, fatal=fatal)
        if fatal:
            raise net.MalformedMessage(detail)
        if self._malformed_in_a_row >= self.config.max_malformed_messages:
            raise net.MalformedMessage(
                f"the server sent {self._malformed_in_a_row} unusable messages in a row (last: {detail})")

    def _dispatch(self, session: Any, message: types.LiveServerMessage) -> None:
        """Handles every part of one message, in the order the service means them."""
        self._output.check()
        try:
            self._handle(session, message)
        except DuplexError:
            raise
        except Exception as exc:  # a shape the SDK accepted but that makes no sense
            self._skip("unusable", f"a message that could not be used ({type(exc).__name__}: {exc})")
            return
        self._malformed_in_a_row = 0

    def _handle(self, session: Any, message: types.LiveServerMessage) -> None:
        content = message.server_content
        if content is not None:
            self._handle_content(content)
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle:
            self.resumption_handle = update.new_handle
            self._emit("resumption_handle", update.new_handle)
            if self._await_handle:
                self._reconnect.set()
        if message.usage_metadata is not None:
            self._emit("usage", total_tokens=message.usage_metadata.total_token_count)
        if message.tool_call is not None:
            self._runner.handle_call(session, message.tool_call)
        if message.tool_call_cancellation is not None:
            self._runner.cancel(list(message.tool_call_cancellation.ids or []), "cancelled by the server")
        if message.go_away is not None:
            self._on_go_away(message.go_away.time_left)

    def _handle_content(self, content: types.LiveServerContent) -> None:
        out = self._output
        if content.interrupted:
            out.interrupted()  # flush first, talk later
        if content.input_transcription is not None and content.input_transcription.text:
            out.input_text(content.input_transcription.text, content.input_transcription.finished)
        if content.output_transcription is not None and content.output_transcription.text:
            out.output_text(content.output_transcription.text, content.output_transcription.finished)
        if content.model_turn is not None and content.model_turn.parts:
            for part in content.model_turn.parts:
                blob = part.inline_data
                if blob is None or not blob.data or not (blob.mime_type or "audio/pcm").startswith("audio/pcm"):
                    continue
                out.audio(bytes(blob.data), blob.mime_type or "audio/pcm;rate=24000")
        if content.generation_complete:
            out.generation_complete()
        if content.turn_complete:
            out.turn_complete()
            if self._go_away_pending:
                self._answer_done_after_go_away()
        elif content.interrupted and self._go_away_pending:
            self._answer_done_after_go_away()

    # -- goAway ------------------------------------------------------------------------

    def _on_go_away(self, time_left: Any) -> None:
        seconds = net.parse_time_left(time_left)
        first = not self._go_away_seen
        self._go_away_seen = True
        self._emit("go_away", str(time_left or ""), time_left=time_left, time_left_s=seconds, repeated=not first)
        if not self.config.session_resumption or not first:
            return  # without resumption, talk on until the server closes; repeats change nothing
        self._go_away_pending = True
        if not self._output.answer_in_progress:
            self._reconnect.set()  # idle: move now, well before the deadline
            return
        # Let the answer in progress finish within the time left (keeping a margin for the
        # new connection), then move.
        budget = max(0.0, seconds - min(1.0, 0.2 * seconds))
        self._go_away_task = asyncio.create_task(self._reconnect_after(budget), name="duplex-live-go-away")

    def _answer_done_after_go_away(self) -> None:
        # Wait briefly for the resumption handle that covers this answer.
        self._await_handle = True
        if self._handle_timer is None:
            self._handle_timer = asyncio.get_running_loop().call_later(_HANDLE_WAIT_S, self._reconnect.set)

    async def _reconnect_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._reconnect.set()

    def _emit(self, kind: EventKind, text: str = "", data_from: dict[str, Any] | None = None, /,
              **data: Any) -> None:
        self._events.put_nowait(LiveEvent(kind, text, data_from if data_from is not None else data))
