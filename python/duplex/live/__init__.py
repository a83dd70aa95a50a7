"""Live sessions: :class:`LiveConversation` talks to a Gemini Live model over google-genai.

Modules: :mod:`~duplex.live.config` (settings, events, the error),
:mod:`~duplex.live.conversation` (the connection and its reconnects),
:mod:`~duplex.live.output` (the model's audio and the transcripts),
:mod:`~duplex.live.tools` (function calling), :mod:`~duplex.live.transport` (network
bounds and malformed messages).
"""

from __future__ import annotations

from ..extras import require

require("duplex.live", "live")

# The imports come after the check that says which extra to install.
from .config import DEFAULT_MODEL, EventKind, LiveConfig, LiveEvent, LiveSessionError, MediaResolution  # noqa: E402
from .conversation import RETRYABLE_CLOSE_CODES, LiveConversation  # noqa: E402
from .tools import FunctionTool, ToolSet, function_tool, local_time  # noqa: E402
from .transport import recommended_websocket_args  # noqa: E402

__all__ = [
    "DEFAULT_MODEL",
    "EventKind",
    "FunctionTool",
    "LiveConfig",
    "LiveConversation",
    "LiveEvent",
    "LiveSessionError",
    "MediaResolution",
    "RETRYABLE_CLOSE_CODES",
    "ToolSet",
    "function_tool",
    "local_time",
    "recommended_websocket_args",
]
