"""Settings, events and the error of a Live conversation (no networking here)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from google.genai import types

__all__ = [
    "DEFAULT_MODEL",
    "EventKind",
    "LiveConfig",
    "LiveEvent",
    "LiveSessionError",
    "MediaResolution",
]

#: A current native-audio Live model; override with ``model=`` or ``$DUPLEX_MODEL``.
DEFAULT_MODEL = os.environ.get("DUPLEX_MODEL", "gemini-3.8-live")

#: Media resolution of video frames: 64 tokens a frame (low) or 256 (medium, high). The
#: SDK's full names (``"MEDIA_RESOLUTION_LOW"``) and ``types.MediaResolution`` work too.
MediaResolution = Literal["low", "medium", "high"]

#: Every kind of :class:`LiveEvent`.
EventKind = Literal[
    "connected", "reconnecting", "go_away", "closed", "error",
    "input_transcript", "output_transcript", "interrupted", "generation_complete",
    "turn_complete", "resumption_handle", "usage", "stats",
    "text_sent", "audio_stream_end", "muted", "unmuted",
    "tool_call", "tool_result", "tool_cancelled",
    "malformed", "device_lost", "device_restored",
    "video", "video_opened", "video_ended", "video_error",
]


class LiveSessionError(Exception):
    """The Live session ended and could not be resumed; the message says why and what to do.

    ``code`` is the WebSocket close code when the service closed the connection."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LiveEvent:
    """Something that happened in the conversation, for user interfaces and tests.

    ``kind`` (:data:`EventKind`) is one of:

    - ``connected`` / ``reconnecting`` / ``go_away`` / ``closed`` / ``error``: the
      connection's life (``go_away``: ``data["time_left_s"]``).
    - ``input_transcript`` / ``output_transcript``: a fragment of what the user / model
      said (``data["finished"]`` as the service sent it, ``data["aggregate"]`` the text of
      the utterance so far).
    - ``interrupted``: barge-in; ``text`` = the model's words the listener heard, ``data``
      has ``heard_ms``, ``received_ms``, ``discarded_ms``, ``full_text``.
    - ``generation_complete``, ``turn_complete`` (``text`` = the turn's transcript;
      ``data["interrupted"]`` when it closes an interrupted turn), ``usage``,
      ``resumption_handle``, ``stats`` (``data`` = the engine's stats).
    - ``text_sent``, ``audio_stream_end`` (the microphone was quiet or muted for more than
      a second), ``muted``, ``unmuted``.
    - ``tool_call``, ``tool_result``, ``tool_cancelled``: function calling (``data`` has
      ``id``, ``name``, and ``args`` / ``response`` / ``reason``).
    - ``device_lost`` / ``device_restored``: the microphone or speaker went away and came
      back (the engine reopens it; the session goes on).
    - ``malformed``: a server message that could not be used and was skipped
      (``data["kind"]``, ``data["detail"]``, ``data["count"]``).
    - ``video``, ``video_opened``, ``video_ended``, ``video_error``.
    """

    kind: EventKind
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

    ``tools`` declares functions the model may call (see :mod:`duplex.live.tools`): plain
    Python callables (sync ones run on a worker thread, async ones on the loop; the
    declaration comes from the signature, type hints and docstring),
    :func:`~duplex.live.tools.function_tool` values (explicit declaration, NON_BLOCKING
    behaviour, response scheduling), ``"google_search"`` for Search grounding, or any
    ``types.Tool``.

    Network bounds (seconds): ``connect_timeout_s`` for the socket, TLS and
    ``setupComplete``; the connection is declared dead when a keepalive ping sent every
    ``keepalive_interval_s`` gets no pong and no message arrives for
    ``keepalive_timeout_s`` (the service's pongs were seen to take up to 30 s), so a frozen
    peer is found within ``keepalive_interval_s + keepalive_timeout_s``;
    ``close_timeout_s`` for the closing handshake before the socket is dropped.
    ``max_malformed_messages`` unusable server messages in a row end the session.
    """

    model: str = DEFAULT_MODEL
    voice: str | None = None
    media_resolution: MediaResolution | types.MediaResolution | str | None = None
    system_instruction: str | None = None
    input_transcription: bool = True
    output_transcription: bool = True
    session_resumption: bool = True
    compression: bool | None = None
    automatic_vad: dict[str, Any] | None = None
    manual_activity: bool = False
    tools: list[Any] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    max_reconnects: int = 5
    stats_interval_s: float = 1.0
    connect_timeout_s: float = 10.0
    keepalive_interval_s: float = 5.0
    keepalive_timeout_s: float = 35.0
    close_timeout_s: float = 1.0
    audio_stream_end_after_s: float = 1.0
    max_malformed_messages: int = 50
