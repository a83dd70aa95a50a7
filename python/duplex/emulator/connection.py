"""One emulated Live session over one WebSocket connection.

The receive loop parses every client frame as it arrives (VAD runs inline, so barge-in
is detected within the frame that confirms speech), while each answer is sent by its own
asyncio task, paced by the connection's :class:`~duplex.emulator.scenarios.Scenario`.
Malformed input raises :class:`~duplex.emulator.protocol.ProtocolError` and closes the
connection with 1007, as the service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from . import protocol as p
from .media import inspect_image
from .pacing import plan_answer
from .records import Answer, AudioChunkRecord, Interruption, SentEvent, Session, Utterance, VideoFrameRecord
from .resumption import ResumableState, ResumptionRegistry
from .scenarios import Scenario
from .schema import check_model, validate_setup
from .tools import (INVALID_ARGUMENT, ToolCall, Tools, calls_named_in, describe_result, parse_scenario_args,
                    parse_tool_response, parse_tools)
from ..vad import EnergyVad, VadConfig
from .voice import Voice

logger: logging.Logger = logging.getLogger(__name__)

INPUT_RATE_HZ = 16_000
SETUP_TIMEOUT_S = 30.0


def _describe(message: dict[str, Any]) -> str:
    """The kind of a server message for the records (``"audio"``, ``"turnComplete"``, ...)."""
    kinds: list[str] = []
    for key, value in message.items():
        if key != "serverContent":
            kinds.append(key)
            continue
        for sub in value:
            if sub == "modelTurn":
                parts = value[sub].get("parts", [])
                kinds.append("audio" if any("inlineData" in part for part in parts) else "text")
            else:
                kinds.append(sub)
    return "+".join(kinds)


class Connection:
    """Runs the Live protocol on one accepted WebSocket.

    Args:
        ws: the accepted connection.
        record: where observations go.
        scenario: behaviour of this session.
        voice: the answer voice.
        registry: resumption handles shared by all connections of the emulator.
        accepted_input_rates: sample rates accepted in ``audio/pcm;rate=N``.
    """

    def __init__(self, ws: ServerConnection, record: Session, scenario: Scenario, voice: Voice,
                 registry: ResumptionRegistry, accepted_input_rates: tuple[int, ...] = (INPUT_RATE_HZ,)) -> None:
        self.ws = ws
        self.record = record
        self.scenario = scenario
        self.voice = voice
        self.registry = registry
        self.accepted_input_rates = accepted_input_rates
        self.setup: p.SetupRequest | None = None
        self.state: ResumableState | None = None
        self._send_lock = asyncio.Lock()
        self._vad: EnergyVad | None = None
        self._speech_started_at: float | None = None
        self._speech_start_pos = 0
        self._activity_open_at: float | None = None
        self._activity_samples = 0
        self._answer_task: asyncio.Task[None] | None = None
        self._answer: Answer | None = None  # the answer in progress (until its turn ends)
        self._queue: list[tuple[Answer, str | None, float]] = []  # answers waiting for the current one
        self.tools: Tools = Tools()
        self._calls: dict[str, ToolCall] = {}  # every function call issued on this connection, by id
        self._waiting: list[ToolCall] | None = None  # BLOCKING calls the model waits on, silent
        self._scenario_tool_turns = 0
        self._pending_texts: list[str] = []  # clientContent text not yet answered (turnComplete false)
        self._heard_head_sent = False  # the first input transcription fragment went out during speech
        self._owed_turn_complete: Answer | None = None  # a cut turn whose turnComplete rides on the next audio
        self._answers_done = 0
        self._timers: list[asyncio.Task[None]] = []
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serves the connection until either side closes it."""
        if self.scenario.pong_delay_s > 0:
            self._delay_pongs(self.scenario.pong_delay_s)
        try:
            try:
                first = await asyncio.wait_for(self.ws.recv(), SETUP_TIMEOUT_S)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                raise p.ProtocolError("No setup message received.") from None
            await self._handle_setup(first)
            async for raw in self.ws:
                await self._handle_frame(raw)
        except p.ProtocolError as exc:
            if exc.detail:
                self.record._set(error_detail=exc.detail)
                logger.info("session %d refused: %s (%s)", self.record.index, exc.reason, exc.detail)
            self.request_close(exc.code, exc.reason)
        except ConnectionClosed:
            pass
        except Exception:  # an emulator bug: fail the way the service does, not by hanging
            logger.exception("session %d failed", self.record.index)
            self.request_close(1011, "Internal error encountered.")
        finally:
            if self._close_task is None:
                await self._cancel_tasks()
            else:
                await asyncio.gather(self._close_task, return_exceptions=True)
            await self.ws.wait_closed()
            self._record_close()

    def _delay_pongs(self, delay_s: float) -> None:
        """Answers keepalive pings ``delay_s`` late (the service's pongs have taken 8-30 s,
        past websockets' default 20 s ``ping_timeout``)."""
        protocol, loop = self.ws.protocol, asyncio.get_running_loop()
        send_frame = protocol.send_frame

        def later(frame: Frame) -> None:
            if protocol.state is State.OPEN:
                send_frame(frame)
                self.ws.send_data()

        def send_frame_delaying_pongs(frame: Frame) -> None:
            if frame.opcode is Opcode.PONG:
                self.record._add("_pings", time.monotonic())
                loop.call_later(delay_s, later, frame)
            else:
                send_frame(frame)

        protocol.send_frame = send_frame_delaying_pongs  # type: ignore[method-assign]

    def request_close(self, code: int, reason: str) -> None:
        """Closes the connection with ``code`` from a task of its own (first call wins)."""
        if self._closing:
            return
        self._closing = True
        self._close_task = asyncio.create_task(self._do_close(code, p.truncate_reason(reason)))

    async def _do_close(self, code: int, reason: str) -> None:
        await self._cancel_tasks()
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    async def _cancel_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in [self._answer_task, *self._timers] if t is not None and t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _record_close(self) -> None:
        proto = self.ws.protocol
        if proto.close_sent is not None and not proto.close_rcvd_then_sent:
            frame, by = proto.close_sent, "server"
        else:
            frame, by = proto.close_rcvd, "client"
        code, reason = (frame.code, frame.reason) if frame is not None else (1006, "")
        self.record._set(close=(code, reason, by, time.monotonic()))

    async def _send(self, message: dict[str, Any]) -> None:
        data = p.encode_server_message(message)
        async with self._send_lock:
            await self.ws.send(data)  # bytes → a binary frame, like the real service
        self.record._add("_events", SentEvent(time.monotonic(), _describe(message), len(data)))

    # -- setup -----------------------------------------------------------------------------

    async def _handle_setup(self, raw: str | bytes) -> None:
        kind, body = p.parse_client_frame(raw)
        if kind != "setup":
            raise p.ProtocolError(f"The first message must be setup, got {p.to_snake(kind)}.")
        self.record._set(setup=body if isinstance(body, dict) else None)
        self.record._add("_client_messages", (time.monotonic(), "setup"))
        version = self.record.api_version
        validate_setup(body, version)
        setup = p.parse_setup(body)
        self.record._set(model=setup.model)
        check_model(setup.model, setup.response_modalities, version, any_model=self.scenario.any_model)
        if setup.resumption_handle:
            state = self.registry.resume(setup.resumption_handle)
            self.record._set(resumed_with=setup.resumption_handle)
        else:
            state = self.registry.new_state()
        state.connections += 1
        self.state, self.setup = state, setup
        behavior = self.scenario.tool_behavior_default
        if behavior == "auto":
            behavior = "NON_BLOCKING" if "native-audio" in setup.model else "BLOCKING"
        self.tools = parse_tools(setup.tools, behavior)
        self.record._set(state_id=state.id, turn_index_at_start=state.turn_index)
        sc = self.scenario
        base = VadConfig(threshold_dbfs=sc.vad_threshold_dbfs, start_ms=sc.vad_start_ms, end_ms=sc.vad_end_ms)
        vad = setup.vad
        if vad.automatic:
            self._vad = EnergyVad(base.with_setup(vad.prefix_padding_ms, vad.silence_duration_ms,
                                                  vad.start_sensitivity))
        await self._send(p.msg_setup_complete())
        await self._send_resumption(resumable=True)
        self._timers.append(asyncio.create_task(self._lifetime()))
        if sc.close_after_s is not None:
            self._timers.append(asyncio.create_task(self._close_later(sc.close_after_s)))

    async def _send_resumption(self, resumable: bool, without_handle: bool = False) -> None:
        if self.setup is None or not self.setup.resumption_enabled or self._closing:
            return
        if resumable and any(c.pending and c.behavior == "BLOCKING" for c in self._calls.values()):
            resumable = False  # not while the model waits for a function's result
        if resumable and without_handle and self.scenario.handleless_updates and self.record.handles_issued:
            await self._send({"sessionResumptionUpdate": {"resumable": True}})  # the last handle still resumes
            return
        handle = self.registry.issue(self.state, self.is_open) if resumable else ""  # type: ignore[arg-type]
        if handle:
            self.record._add("_handles_issued", handle)
        await self._send(p.msg_resumption_update(handle, resumable))

    def is_open(self) -> bool:
        """True while the WebSocket is open (no close frame sent or received yet)."""
        return self.ws.protocol.state is State.OPEN

    async def _lifetime(self) -> None:
        sc = self.scenario
        await asyncio.sleep(sc.go_away_at_s)
        await self._send(p.msg_go_away(sc.connection_lifetime_s - sc.go_away_at_s))
        await asyncio.sleep(max(0.0, sc.close_at_s - sc.go_away_at_s))
        self.request_close(sc.expiry_close_code, sc.expiry_close_reason)

    async def _close_later(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.request_close(self.scenario.close_code or 1011, self.scenario.close_reason)

    # -- client frames ---------------------------------------------------------------------

    async def _handle_frame(self, raw: str | bytes) -> None:
        now = time.monotonic()
        kind, body = p.parse_client_frame(raw)
        if kind == "setup":
            raise p.ProtocolError("setup may only be sent once, as the first message.")
        if kind == "realtimeInput":
            for item_kind, value in p.parse_realtime_input(body):
                self.record._add("_client_messages", (now, item_kind))
                await self._realtime(item_kind, value, now)
        elif kind == "clientContent":
            content = p.parse_client_content(body)
            self.record._add("_client_messages", (now, "clientContent"))
            # Turns without turnComplete are added to the context; the next turnComplete answers them all.
            self._pending_texts.extend(content.texts)
            if not content.turn_complete:
                assert self.state is not None
                self.state.context_tokens += sum(len(t) for t in content.texts) // 4
            else:
                text = " ".join(self._pending_texts).strip()
                self._pending_texts.clear()
                await self._user_turn("client_content", now, text=text or "(an empty turn)")
        elif kind == "toolResponse":
            self.record._add("_client_messages", (now, "toolResponse"))
            await self._tool_response(body, now)
        else:  # contextUpdate: accepted and ignored
            if not isinstance(body, dict):
                raise p.ProtocolError("Invalid JSON payload received. 'contextUpdate' must be an object.")
            self.record._add("_client_messages", (now, "contextUpdate"))

    async def _realtime(self, kind: str, value: Any, now: float) -> None:
        assert self.setup is not None
        if kind == "audio":
            await self._audio(value, now)
        elif kind == "video":
            self._video(value, now)
        elif kind == "mediaChunks":
            # Deprecated field; the service uses only the first chunk.
            if value:
                blob = value[0]
                if blob.base_type.startswith("audio/"):
                    await self._audio(blob, now)
                elif blob.base_type.startswith("image/"):
                    self._video(blob, now)
                else:
                    raise p.ProtocolError(f"Unsupported media chunk mime type {blob.mime_type!r}.")
        elif kind == "text":
            if value.strip():  # blank text is no turn
                await self._user_turn("text", now, text=value)
        elif kind == "activityStart":
            if self._vad is not None:
                raise p.ProtocolError("activityStart is only allowed when automatic activity detection is disabled.")
            if self._activity_open_at is not None:
                raise p.ProtocolError("activityStart sent twice without activityEnd.")
            self._activity_open_at, self._activity_samples = now, 0
            await self._barge_in("activityStart", now)
            await self._send_heard_start()
        elif kind == "activityEnd":
            if self._vad is not None:
                raise p.ProtocolError("activityEnd is only allowed when automatic activity detection is disabled.")
            if self._activity_open_at is None:
                raise p.ProtocolError("activityEnd without a preceding activityStart.")
            started, self._activity_open_at = self._activity_open_at, None
            await self._user_turn("manual", now, started_at=started,
                                  speech_s=self._activity_samples / INPUT_RATE_HZ)
        elif kind == "audioStreamEnd" and self._vad is not None:
            event = self._vad.force_end()
            if event is not None:
                await self._speech_end(event.position, now)

    async def _audio(self, blob: p.Blob, now: float) -> None:
        if blob.base_type != "audio/pcm":
            raise p.ProtocolError(f"Unsupported audio mime type {blob.mime_type!r}; use audio/pcm;rate=16000.")
        try:
            rate = int(blob.params.get("rate", str(INPUT_RATE_HZ)))
        except ValueError:
            raise p.ProtocolError(f"Invalid audio mime type {blob.mime_type!r}: bad rate.") from None
        if rate not in self.accepted_input_rates:
            raise p.ProtocolError(f"Unsupported input sample rate {rate} Hz in {blob.mime_type!r}; "
                                  f"send 16-bit PCM at {INPUT_RATE_HZ} Hz.")
        if len(blob.data) % 2:
            raise p.ProtocolError(f"Audio blob of {len(blob.data)} bytes is not whole 16-bit samples.")
        samples = np.frombuffer(blob.data, dtype="<i2")
        self.record._add("_audio", AudioChunkRecord(now, len(blob.data), samples.size, rate, blob.mime_type,
                                                         bytes(blob.data)))
        assert self.state is not None
        self.state.audio_samples += samples.size
        if self._vad is None:
            if self._activity_open_at is not None:
                self._activity_samples += samples.size
            return
        for event in self._vad.feed(samples):
            if event.kind == "start":
                self._speech_started_at, self._speech_start_pos = now, event.position
                await self._barge_in("vad", now)
                await self._send_heard_start()
            else:
                await self._speech_end(event.position, now)

    def _video(self, blob: p.Blob, now: float) -> None:
        if not blob.base_type.startswith("image/"):
            raise p.ProtocolError(f"Unsupported video mime type {blob.mime_type!r}; send image/jpeg frames.")
        info = inspect_image(blob.data, blob.base_type)
        self.record._add("_video", VideoFrameRecord(now, blob.mime_type, len(blob.data), info.width, info.height,
                                                    info.valid, info.decoder, info.error))

    async def _speech_end(self, end_position: int, now: float) -> None:
        speech_s = max(0, end_position - self._speech_start_pos) / INPUT_RATE_HZ
        await self._user_turn("vad", now, started_at=self._speech_started_at, speech_s=speech_s)
        self._speech_started_at = None

    # -- input transcription ------------------------------------------------------------------

    def _heard_head(self) -> str | None:
        """The first word of the input transcription template, when it does not depend on
        the speech (it can be sent while the user still speaks, as the service's partials are)."""
        words = self.scenario.input_transcription_template.split()
        return words[0] if words and "{" not in words[0] else None

    async def _send_heard_start(self) -> None:
        head = self._heard_head()
        if head and self.setup is not None and self.setup.input_transcription and not self._heard_head_sent:
            self._heard_head_sent = True
            await self._send(p.msg_input_transcription(head, finished=False))

    async def _send_heard(self, heard: str) -> None:
        """Sends the input transcription in fragments (one word each; the last one
        ``finished``), as the service does: clients must aggregate them."""
        if self.setup is None or not self.setup.input_transcription:
            return
        words = heard.split()
        if self._heard_head_sent and words and words[0] == self._heard_head():
            words = words[1:]
            first = False
        else:
            first = True
        self._heard_head_sent = False
        for i, word in enumerate(words):
            text = word if first and i == 0 else " " + word
            await self._send(p.msg_input_transcription(text, finished=i == len(words) - 1))

    # -- turns -----------------------------------------------------------------------------

    async def _barge_in(self, cause: str, detected_at: float) -> None:
        """Cuts the model's turn in progress, if the session allows barge-in: the answer being
        sent (``interrupted``) and the function calls of that turn (``toolCallCancellation``)."""
        if not self.setup or not self.setup.vad.barge_in:
            return
        answer = self._answer
        cancel = [c for c in self._waiting or () if c.pending]
        self._waiting = None
        if answer is not None:
            cancel += [self._calls[i] for i in answer.tool_call_ids if self._calls[i].pending]
        if answer is None and not cancel:
            return
        if answer is not None:
            await self._cut_answer(cause, detected_at)
        if cancel:
            at = time.monotonic()
            for call in cancel:
                call.cancelled_at = at
            await self._send(p.msg_tool_call_cancellation([c.id for c in cancel]))
        if answer is not None:
            mode = self.scenario.interrupted_turn_complete
            if mode == "at_once":
                await self._send(p.msg_server_flag("turnComplete"))
                answer.turn_complete_at = time.monotonic()
            elif mode == "with_next":
                self._owed_turn_complete = answer  # merged into the next answer's first audio message
        await self._send_resumption(resumable=True, without_handle=True)

    async def _cut_answer(self, cause: str, detected_at: float) -> None:
        """Stops the answer being sent and says ``interrupted``; queued answers are dropped."""
        answer, task = self._answer, self._answer_task
        assert answer is not None and task is not None
        self._queue.clear()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._answer = None
        answer.interrupted_at = time.monotonic()
        await self._send(p.msg_server_flag("interrupted"))
        self.record._add("_interruptions", Interruption(time.monotonic(), answer.turn_index, cause, detected_at,
                                                        answer.audio_sent_s))
        self._account(answer)  # only what was sent stays in the context

    async def _user_turn(self, source: str, now: float, *, started_at: float | None = None,
                         speech_s: float = 0.0, text: str | None = None) -> None:
        """Records a finished user turn and starts its answer."""
        self.record._add("_utterances", Utterance(source, started_at, now, speech_s, text))
        if source in ("text", "client_content"):
            await self._barge_in(source, now)  # new text input cuts the current answer
        sc = self.scenario
        if text is None:
            reply = sc.reply_template.format(seconds=speech_s)
            heard = sc.input_transcription_template.format(seconds=speech_s)
            tokens, modality = round(25 * speech_s), "AUDIO"  # ~25 tokens per second of audio
        else:
            reply = sc.text_reply_template.format(text=text[:300])
            heard = None  # text input is not transcribed
            tokens, modality = max(1, len(text) // 4), "TEXT"
        wanted = self._calls_wanted(text)
        if wanted:
            assert self.state is not None
            self.state.context_tokens += tokens
            await self._call_functions(source, now, wanted, heard, speech_s)
            return
        self._start_answer(self._new_answer(source, reply, now, tokens, modality), heard, speech_s, queue=True)

    def _new_answer(self, trigger: str, reply: str, trigger_at: float, input_tokens: int = 0,
                    modality: str = "TEXT") -> Answer:
        assert self.state is not None
        answer = Answer(turn_index=self.state.turn_index, trigger=trigger, reply_text=reply, trigger_at=trigger_at,
                        started_at=time.monotonic(), input_tokens=input_tokens, input_modality=modality)
        self.state.turn_index += 1
        self.record._add("_answers", answer)
        return answer

    def _start_answer(self, answer: Answer, heard: str | None, speech_s: float, *, queue: bool) -> None:
        """Starts sending ``answer``, or (``queue``) queues it behind the answer in progress
        (NO_INTERRUPTION turns, WHEN_IDLE function results)."""
        if queue and self._answer is not None:
            self._queue.append((answer, heard, speech_s))
            return
        self._answer = answer
        self._answer_task = asyncio.create_task(self._run_answer(answer, heard, speech_s))

    async def _run_answer(self, answer: Answer, heard: str | None, speech_s: float) -> None:
        try:
            await self._send_answer(answer, heard, speech_s)
        except ConnectionClosed:
            return
        except Exception as exc:  # a bug or a failing synthesizer: report it the service's way
            logger.exception("answer %d failed", answer.turn_index)
            self.request_close(1011, f"Internal error encountered. ({type(exc).__name__})")
            return
        if self._answer is answer:
            self._answer = None
        self._answers_done += 1
        sc = self.scenario
        if sc.close_code is not None and sc.close_after_answers and self._answers_done >= sc.close_after_answers:
            await self._send_resumption(resumable=True)
            self.request_close(sc.close_code, sc.close_reason)
            return
        if self._queue:
            self._start_answer(*self._queue.pop(0), queue=False)
        else:
            await self._send_resumption(resumable=True)

    # -- function calls --------------------------------------------------------------------

    def _calls_wanted(self, text: str | None) -> list[tuple[str, dict[str, Any]]]:
        """The functions the "model" calls for a user turn: those a text names, else the
        scenario's ``tool_call`` (for at most ``tool_call_limit`` turns)."""
        if not self.tools:
            return []
        if text:
            named = calls_named_in(text, self.tools)
            if named:
                return named
        sc = self.scenario
        if sc.tool_call is None or (sc.tool_call_limit is not None and self._scenario_tool_turns >= sc.tool_call_limit):
            return []
        name = next(iter(self.tools.declarations)) if sc.tool_call == "*" else sc.tool_call
        if name not in self.tools.declarations:
            logger.warning("scenario tool_call=%s is not declared in setup.tools; not calling it", name)
            return []
        self._scenario_tool_turns += 1
        return [(name, parse_scenario_args(sc.tool_args))]

    async def _call_functions(self, source: str, now: float, wanted: list[tuple[str, dict[str, Any]]],
                              heard: str | None, speech_s: float) -> None:
        """Sends ``toolCall``; BLOCKING calls make the model wait silent, NON_BLOCKING ones
        let it say a filler sentence meanwhile."""
        assert self.setup is not None and self.state is not None
        await self._send_resumption(resumable=False)
        if heard:
            await self._send_heard(heard)
        at = time.monotonic()
        calls = []
        for name, args in wanted:
            call = ToolCall(f"fc-{self.record.index}-{len(self._calls) + 1}", name, args,
                            self.tools.declarations[name].behavior, self.state.turn_index, at)
            self._calls[call.id] = call
            self.record._add("_tool_calls", call)
            calls.append(call)
        await self._send(p.msg_tool_call([c.wire() for c in calls]))
        blocking = [c for c in calls if c.behavior == "BLOCKING"]
        if blocking:
            self._waiting = blocking
            return
        names = " and ".join(c.name for c in calls)
        filler = self._new_answer(source, self.scenario.tool_filler_template.format(name=names), now)
        filler.tool_call_ids = tuple(c.id for c in calls)
        self._start_answer(filler, None, speech_s, queue=True)

    async def _tool_response(self, body: Any, now: float) -> None:
        """Matches ``functionResponses`` to pending calls and answers with their results."""
        results: list[tuple[ToolCall, Any, str]] = []
        for response in parse_tool_response(body):
            call = self._calls.get(response.id)
            if call is None:
                raise p.ProtocolError(INVALID_ARGUMENT,
                                      detail=f"toolResponse for unknown function call id {response.id!r}")
            if not call.pending:  # cancelled, or already answered: the model ignores it
                self.record._add("_late_tool_responses", response)
                continue
            call.responses.append(response)
            if call.behavior == "BLOCKING" or not response.will_continue:
                call.responded_at = now
            if call.behavior == "NON_BLOCKING":
                results.append((call, response.response, response.scheduling))
        waiting = self._waiting
        if waiting is not None and all(c.responded_at is not None for c in waiting):
            self._waiting = None
            reply = " ".join(self._result_sentence(c.name, c.responses[-1].response) for c in waiting)
            tokens = sum(len(str(c.responses[-1].response)) // 4 for c in waiting)
            self._start_answer(self._new_answer("tool_response", reply, now, tokens), None, 0.0, queue=True)
        for call, result, scheduling in results:
            if scheduling == "SILENT":
                continue
            answer = self._new_answer("tool_response", self._result_sentence(call.name, result), now,
                                      len(str(result)) // 4)
            if scheduling == "INTERRUPT" and self._answer is not None:
                await self._cut_answer("tool_response", now)
                await self._send(p.msg_server_flag("turnComplete"))
            self._start_answer(answer, None, 0.0, queue=scheduling != "INTERRUPT")

    def _result_sentence(self, name: str, result: Any) -> str:
        return self.scenario.tool_reply_template.format(name=name, result=describe_result(result))

    async def _send_answer(self, answer: Answer, heard: str | None, speech_s: float) -> None:
        assert self.setup is not None
        sc, setup = self.scenario, self.setup
        await self._send_resumption(resumable=False)
        if heard:
            await self._send_heard(heard)
        if setup.response_modalities == ("TEXT",):
            await self._sleep_until(answer.trigger_at + sc.answer_delay_ms / 1000)
            words = answer.reply_text.split()
            for i in range(0, len(words), 4):
                fragment = (" " if i else "") + " ".join(words[i : i + 4])
                await self._send(p.msg_text(fragment))
                answer.first_audio_at = answer.first_audio_at or time.monotonic()
            await self._finish(answer, speech_s, premature=False)
            return
        spoken = await asyncio.to_thread(self.voice.speak, answer.reply_text)
        answer.voice_engine, answer.audio_total_s = spoken.engine, spoken.duration_s
        answer.pcm = np.asarray(spoken.pcm, dtype="<i2").tobytes()  # for duplex.emulator.echo
        steps = plan_answer(spoken.pcm, answer.reply_text, sc, transcribe=setup.output_transcription)
        await self._sleep_until(answer.trigger_at + sc.answer_delay_ms / 1000)
        t0 = time.monotonic()
        premature = False
        for step in steps:
            await self._sleep_until(t0 + step.offset_s)
            if step.premature_turn_complete:
                await self._send(p.msg_server_flag("turnComplete"))
                answer.turn_complete_at, answer.premature_turn_complete = time.monotonic(), True
                premature = True
                continue
            assert step.message is not None
            message = step.message
            owed = self._owed_turn_complete
            if owed is not None and step.chunk_bytes:
                message = {**message, "serverContent": {**message["serverContent"], "turnComplete": True}}
                self._owed_turn_complete = None
            await self._send(message)
            if owed is not None and message is not step.message:
                owed.turn_complete_at = time.monotonic()
            if step.chunk_bytes:
                answer.chunks_sent += len(step.chunk_bytes)
                answer.chunk_bytes.extend(step.chunk_bytes)
                answer.audio_sent_s += step.audio_s
                if answer.first_audio_at is None:
                    answer.first_audio_at = time.monotonic()
        await self._finish(answer, speech_s, premature=premature, t0=t0)

    async def _finish(self, answer: Answer, speech_s: float, premature: bool, t0: float | None = None) -> None:
        await self._send(p.msg_server_flag("generationComplete"))
        answer.generation_complete_at = time.monotonic()
        if premature:
            self._account(answer)
            return  # turnComplete already went out before the audio ended
        if t0 is not None:
            await self._sleep_until(t0 + self.scenario.playout_s(answer.audio_total_s))
        prompt, response = self._account(answer)
        usage = p.msg_usage(prompt, response, answer.input_modality)
        if self.scenario.bundle:
            await self._send({**p.msg_server_flag("turnComplete"), **usage})
        else:
            await self._send(usage)
            await self._send(p.msg_server_flag("turnComplete"))
        answer.turn_complete_at = time.monotonic()

    def _account(self, answer: Answer) -> tuple[int, int]:
        """Token counts of a finished (or cut) answer: the prompt is the whole context so far
        (earlier turns, what was said of earlier answers, this turn's input), as on the service."""
        assert self.state is not None
        prompt = self.state.context_tokens + answer.input_tokens
        response = max(1, round(25 * answer.audio_sent_s)) if answer.audio_sent_s else max(
            1, len(answer.reply_text) // 4)
        self.state.context_tokens = prompt + response
        answer.prompt_tokens, answer.response_tokens = prompt, response
        return prompt, response

    @staticmethod
    async def _sleep_until(deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
