"""A local Gemini Live API emulator that the unmodified google-genai SDK talks to.

It serves the Live wire protocol (``BidiGenerateContent``) over TLS on 127.0.0.1 with a
certificate made for each run, detects speech in the 16 kHz audio it receives with an
energy VAD, answers each utterance with 24 kHz speech (espeak-ng) plus transcriptions,
sends ``interrupted`` on barge-in, calls declared functions (``toolCall``, waiting for
``toolResponse``, ``toolCallCancellation`` on barge-in), ``sessionResumptionUpdate`` and ``goAway``, and can
misbehave on purpose (bursty or slow audio, premature ``turnComplete``, close 1011).
Everything it sees and does is recorded per connection in :attr:`LiveEmulator.sessions`.

API map
-------
:class:`LiveEmulator`     ``async start()/stop()``, ``async with``, ``run_in_thread()``,
                          ``base_url``, ``cert_path``, ``client_http_options()``,
                          ``make_client()``, ``sessions``
:class:`EmulatorThread`   the thread-backed wrapper for synchronous code
:class:`Scenario`         per-session behaviour; chosen with the ``x-duplex-scenario``
                          upgrade header (:data:`SCENARIO_HEADER`) or the constructor
:class:`Session`          the record of one connection
:func:`main`              ``python -m duplex.emulator`` / ``duplex emulator``
"""

from __future__ import annotations

from ..extras import require

require("duplex.emulator", "live")

from .cli import main  # noqa: E402 - after the check that says which extra to install
from .protocol import ProtocolError
from .records import Answer, AudioChunkRecord, Interruption, SentEvent, Session, Utterance, VideoFrameRecord
from .scenarios import PRESETS, SCENARIO_HEADER, Scenario, ScenarioError
from .server import DEFAULT_MODEL, EmulatorThread, LiveEmulator
from .tools import ToolCall
from ..vad import EnergyVad, VadConfig
from .voice import Voice

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "SCENARIO_HEADER",
    "Answer",
    "AudioChunkRecord",
    "EmulatorThread",
    "EnergyVad",
    "Interruption",
    "LiveEmulator",
    "ProtocolError",
    "Scenario",
    "ScenarioError",
    "SentEvent",
    "ToolCall",
    "Session",
    "Utterance",
    "VadConfig",
    "VideoFrameRecord",
    "Voice",
    "main",
]
