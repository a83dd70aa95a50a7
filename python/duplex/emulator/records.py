"""What the emulator observed and did, per connection, for tests and reports.

Every WebSocket connection gets one :class:`Session` record. The emulator's asyncio
thread appends to it; any thread may read it. List-valued properties return snapshots
(tuples) taken under the record's lock. Times are ``time.monotonic()`` seconds, which on
Linux is one system-wide clock, so other processes can compare against them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AudioChunkRecord:
    """One ``realtimeInput.audio`` (or audio ``mediaChunks``) blob as it arrived."""

    time: float
    nbytes: int
    samples: int
    rate_hz: int
    mime_type: str
    #: The PCM itself (16-bit little-endian), so tests can compare it with what was captured.
    pcm: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class VideoFrameRecord:
    """One image frame (``realtimeInput.video`` or an image ``mediaChunks`` blob)."""

    time: float
    mime_type: str
    nbytes: int
    width: int | None
    height: int | None
    valid: bool
    decoder: str
    error: str | None = None


@dataclass(frozen=True)
class SentEvent:
    """One server message: its kind(s) (e.g. ``"audio"``, ``"turnComplete"``), time and size."""

    time: float
    type: str
    nbytes: int


@dataclass(frozen=True)
class Utterance:
    """A user turn as the emulator delimited it.

    Attributes:
        source: ``"vad"``, ``"manual"`` (activityStart/End), ``"text"`` or ``"client_content"``.
        started_at: time the start was confirmed (None for text turns).
        ended_at: time the end was confirmed (the answer is triggered then).
        speech_s: length of the speech in the input stream (0 for text).
        text: the text of a text turn.
    """

    source: str
    started_at: float | None
    ended_at: float
    speech_s: float
    text: str | None = None


@dataclass
class Answer:
    """One model turn the emulator generated (mutable while it is being sent).

    Latency of the answer = ``first_audio_at - trigger_at``.
    """

    turn_index: int
    trigger: str
    reply_text: str
    trigger_at: float
    started_at: float
    voice_engine: str = ""
    audio_total_s: float = 0.0
    audio_sent_s: float = 0.0
    chunks_sent: int = 0
    chunk_bytes: list[int] = field(default_factory=list)
    first_audio_at: float | None = None
    generation_complete_at: float | None = None
    turn_complete_at: float | None = None
    interrupted_at: float | None = None
    premature_turn_complete: bool = False
    #: Function calls made in this answer's turn (NON_BLOCKING: the answer is the filler).
    tool_call_ids: tuple[str, ...] = ()
    #: Tokens of the user's input that asked for this answer, and its modality.
    input_tokens: int = 0
    input_modality: str = "TEXT"
    #: ``usageMetadata`` counts of this turn (the prompt is the whole context so far).
    prompt_tokens: int | None = None
    response_tokens: int | None = None
    #: The whole answer as 24 kHz s16le (``audio_sent_s`` of it went out), so an echo of it
    #: can be recognised (:mod:`duplex.emulator.echo`).
    pcm: bytes = field(default=b"", repr=False)

    @property
    def latency_s(self) -> float | None:
        """Time from the end of the user's turn to the first answer chunk."""
        return None if self.first_audio_at is None else self.first_audio_at - self.trigger_at

    @property
    def interrupted(self) -> bool:
        """True when barge-in cut this answer."""
        return self.interrupted_at is not None


@dataclass(frozen=True)
class Interruption:
    """A barge-in: ``interrupted`` was sent.

    Attributes:
        time: when ``interrupted`` was sent.
        turn_index: the answer that was cut.
        cause: ``"vad"``, ``"activityStart"``, ``"text"`` or ``"client_content"``.
        detected_at: when the cause was observed (speech start confirmed, message received).
        audio_sent_s: how much answer audio had been sent before the cut.
    """

    time: float
    turn_index: int
    cause: str
    detected_at: float
    audio_sent_s: float

    @property
    def latency_s(self) -> float:
        """From detection of the barge-in to ``interrupted`` on the wire."""
        return self.time - self.detected_at


class Session:
    """The record of one WebSocket connection (thread-safe to read).

    Attributes:
        index: order of the connection at this emulator (0-based).
        path: upgrade request path (``?key=`` / ``?access_token=`` values masked).
        headers: upgrade request headers (the API key value is masked).
        scenario: the :class:`~duplex.emulator.scenarios.Scenario` in effect.
        opened_at: time the WebSocket was accepted.
    """

    def __init__(self, index: int, path: str, headers: dict[str, str], scenario: Any, opened_at: float) -> None:
        self.index = index
        self.path = path
        self.headers = headers
        self.scenario = scenario
        self.opened_at = opened_at
        self._lock = threading.Lock()
        self._setup: dict[str, Any] | None = None
        self._model: str | None = None
        self._state_id: str | None = None
        self._resumed_with: str | None = None
        self._turn_index_at_start = 0
        self._audio: list[AudioChunkRecord] = []
        self._video: list[VideoFrameRecord] = []
        self._events: list[SentEvent] = []
        self._utterances: list[Utterance] = []
        self._answers: list[Answer] = []
        self._interruptions: list[Interruption] = []
        self._handles_issued: list[str] = []
        self._client_messages: list[tuple[float, str]] = []
        self._close: tuple[int, str, str, float] | None = None
        self._tool_calls: list[Any] = []
        self._late_tool_responses: list[Any] = []
        self._error_detail: str | None = None
        self._pings: list[float] = []

    # -- writers (emulator thread) -------------------------------------------------------

    def _add(self, name: str, item: Any) -> None:
        with self._lock:
            getattr(self, name).append(item)

    def _set(self, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self, "_" + key, value)

    # -- readers (any thread) -------------------------------------------------------------

    @property
    def api_version(self) -> str:
        """The API version in the upgrade path (``v1beta``, ``v1alpha`` or ``v1``)."""
        match = re.search(r"generativelanguage\.(v[0-9a-z]+)\.", self.path)
        return match.group(1) if match else "v1beta"

    @property
    def setup(self) -> dict[str, Any] | None:
        """The ``setup`` body exactly as received (JSON dict), or None before it arrived."""
        with self._lock:
            return self._setup

    @property
    def model(self) -> str | None:
        """``setup.model``."""
        with self._lock:
            return self._model

    @property
    def state_id(self) -> str | None:
        """Id of the resumable session state this connection belongs to."""
        with self._lock:
            return self._state_id

    @property
    def resumed_with(self) -> str | None:
        """The resumption handle given in ``setup``, if the connection resumed a session."""
        with self._lock:
            return self._resumed_with

    @property
    def turn_index_at_start(self) -> int:
        """The session's turn counter when this connection started (continues on resume)."""
        with self._lock:
            return self._turn_index_at_start

    @property
    def audio_chunks(self) -> tuple[AudioChunkRecord, ...]:
        """Audio blobs received, in arrival order."""
        with self._lock:
            return tuple(self._audio)

    @property
    def video_frames(self) -> tuple[VideoFrameRecord, ...]:
        """Image frames received, in arrival order."""
        with self._lock:
            return tuple(self._video)

    @property
    def events(self) -> tuple[SentEvent, ...]:
        """Server messages sent, in order."""
        with self._lock:
            return tuple(self._events)

    @property
    def utterances(self) -> tuple[Utterance, ...]:
        """User turns detected."""
        with self._lock:
            return tuple(self._utterances)

    @property
    def answers(self) -> tuple[Answer, ...]:
        """Answers generated (the objects keep updating while an answer is sent)."""
        with self._lock:
            return tuple(self._answers)

    @property
    def interruptions(self) -> tuple[Interruption, ...]:
        """Barge-ins (``interrupted`` sent)."""
        with self._lock:
            return tuple(self._interruptions)

    @property
    def handles_issued(self) -> tuple[str, ...]:
        """Resumption handles sent in ``sessionResumptionUpdate``."""
        with self._lock:
            return tuple(self._handles_issued)

    @property
    def client_messages(self) -> tuple[tuple[float, str], ...]:
        """``(time, kind)`` of every client message (``"setup"``, ``"audio"``, ``"video"``, ...)."""
        with self._lock:
            return tuple(self._client_messages)

    @property
    def tool_calls(self) -> tuple[Any, ...]:
        """Function calls made (:class:`~duplex.emulator.tools.ToolCall`, updated as responses come)."""
        with self._lock:
            return tuple(self._tool_calls)

    @property
    def late_tool_responses(self) -> tuple[Any, ...]:
        """Responses that came for calls already cancelled or answered (ignored, as by the service)."""
        with self._lock:
            return tuple(self._late_tool_responses)

    @property
    def pings(self) -> tuple[float, ...]:
        """When keepalive pings arrived (recorded when ``pong_delay_s`` is set)."""
        with self._lock:
            return tuple(self._pings)

    @property
    def error_detail(self) -> str | None:
        """What exactly was wrong when the connection was closed with a terse service reason."""
        with self._lock:
            return self._error_detail

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed."""
        with self._lock:
            return self._close[0] if self._close else None

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the connection is closed."""
        with self._lock:
            return self._close[1] if self._close else None

    @property
    def closed_by(self) -> str | None:
        """``"server"`` or ``"client"`` (who sent the close frame first), once closed."""
        with self._lock:
            return self._close[2] if self._close else None

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        with self._lock:
            return self._close is not None

    def event_types(self) -> list[str]:
        """The kinds of the server messages sent, in order."""
        return [e.type for e in self.events]

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly digest (counts, latencies, close) of this connection."""
        answers = self.answers
        return {
            "index": self.index,
            "scenario": list(getattr(self.scenario, "names", ())),
            "model": self.model,
            "resumed_with": self.resumed_with,
            "audio_chunks": len(self.audio_chunks),
            "audio_s": round(sum(c.samples / c.rate_hz for c in self.audio_chunks), 3),
            "video_frames": len(self.video_frames),
            "utterances": len(self.utterances),
            "answers": len(answers),
            "answer_latency_s": [round(a.latency_s, 3) for a in answers if a.latency_s is not None],
            "interruptions": len(self.interruptions),
            "tool_calls": len(self.tool_calls),
            "close": [self.close_code, self.close_reason, self.closed_by],
        }
