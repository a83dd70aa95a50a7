"""The network side of a Live conversation: bounded connects and closes, keepalive, and
what to make of a server message the SDK could not parse.

The google-genai SDK waits without a bound for ``setupComplete`` and, on close, for the
closing handshake (websockets' ``close_timeout``, 10 s by default); a frozen peer turns
both into hangs. Here every wait has a deadline, and a socket that does not close in
time is dropped (its transport aborted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from typing import Any

from google.genai import errors as genai_errors

__all__ = ["ConnectionLost", "MalformedMessage", "abort_socket", "classify_receive_error",
           "parse_time_left", "pending_socket", "recommended_websocket_args", "socket_of",
           "transport_closing"]

_DURATION = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*s?\s*$")


class ConnectionLost(Exception):
    """The connection is unusable though no close frame came (e.g. no keepalive pong)."""


class MalformedMessage(Exception):
    """A server message that ends the session (not merely skipped)."""


def recommended_websocket_args(close_timeout_s: float = 1.0) -> dict[str, Any]:
    """``http_options.async_client_args`` for a ``genai.Client`` used with duplex.

    websockets' own keepalive gives up after 20 s without a pong, but the service's pongs
    can take longer; :class:`~duplex.LiveConversation` runs its own keepalive, which also
    counts any message as a sign of life. A short ``close_timeout`` keeps stopping fast."""
    return {"ping_interval": None, "close_timeout": close_timeout_s, "open_timeout": 10.0}


def parse_time_left(value: Any) -> float:
    """Seconds of a ``goAway.timeLeft`` (protobuf Duration JSON such as ``"9.5s"``).

    Anything unreadable, negative or not finite counts as 0 (reconnect now)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        seconds = float(match.group(1)) if match else 0.0
    else:
        seconds = 0.0
    if not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return seconds


def socket_of(session: Any) -> Any | None:
    """The websocket of an SDK ``AsyncSession`` (a private attribute; None if absent)."""
    return getattr(session, "_ws", None)


def transport_closing(session: Any) -> bool:
    """Whether the session's socket is closing or already lost (False when unknown)."""
    transport = getattr(socket_of(session), "transport", None)
    is_closing = getattr(transport, "is_closing", None)
    if is_closing is None:
        return False
    with contextlib.suppress(Exception):
        return bool(is_closing())
    return False


def pending_socket(context_manager: Any) -> Any | None:
    """The websocket an SDK ``connect()`` still waiting for ``setupComplete`` has opened.

    The SDK gives no handle before the session exists; its generator's frame holds the
    socket as ``ws``. None when it is not there (other SDK versions, or not open yet)."""
    gen = getattr(context_manager, "gen", None)
    frame = getattr(gen, "ag_frame", None)
    if frame is None:
        return None
    with contextlib.suppress(Exception):
        return frame.f_locals.get("ws")
    return None


def abort_socket(ws: Any) -> bool:
    """Drops the socket at once (no closing handshake). True if it could."""
    transport = getattr(ws, "transport", None)
    if transport is None:
        return False
    with contextlib.suppress(Exception):
        transport.abort()
        return True
    return False


async def wait_bounded(task: asyncio.Task[Any], timeout: float) -> bool:
    """Waits up to ``timeout`` for ``task`` without cancelling it; True if it finished."""
    if task.done():
        return True
    done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
    return bool(done)


def _snippet(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def classify_receive_error(exc: BaseException) -> tuple[str, str, bool]:
    """What a failure inside the SDK's ``receive()`` means: ``(kind, detail, fatal)``.

    A close of the socket is not classified here (the caller re-raises it). A message the
    SDK could not parse or validate is skipped (``fatal=False``); a JSON error object from
    the server ends the session with its content (``fatal=True``)."""
    if isinstance(exc, genai_errors.APIError):
        details = getattr(exc, "details", None)
        return "error_message", f"the server sent an error message: {_snippet(details)}", True
    if isinstance(exc, RecursionError):
        return "too_deep", "a message nested too deeply to parse", False
    if isinstance(exc, UnicodeDecodeError):
        return "not_utf8", f"a binary frame that is not UTF-8 JSON ({exc.reason} at byte {exc.start})", False
    if isinstance(exc, json.JSONDecodeError):
        return "not_json", f"a frame that is not JSON ({exc.msg})", False
    name = type(exc).__name__
    text = str(exc)
    if name == "ValidationError":  # pydantic: a known field with a value of the wrong kind
        first = text.splitlines()[1:3]
        return "invalid_field", "a message with an invalid field: " + _snippet(" ".join(s.strip() for s in first)), False
    if isinstance(exc, ValueError) and text.startswith("Failed to parse response"):
        return "not_json", "a frame that is not JSON: " + _snippet(text.removeprefix("Failed to parse response: ")), False
    if isinstance(exc, TypeError) and "NoneType" in text:
        # The SDK's reaction to a message with only unknown top-level keys, among them a
        # JSON error object (the service reports errors as close codes; a proxy may not).
        raw = _sdk_response(exc)
        if isinstance(raw, dict) and isinstance(raw.get("error"), (dict, str)):
            return "error_message", f"the server sent an error message: {_snippet(raw['error'])}", True
        return "unknown_message", "a message with no field this client knows (a newer kind of message?)", False
    return "unusable", f"a message the SDK could not read ({name}: {_snippet(text)})", False


def _sdk_response(exc: BaseException) -> Any:
    """The parsed frame the SDK's ``_receive`` was looking at when it raised (or None)."""
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_receive" and "response" in frame.f_locals:
            return frame.f_locals["response"]
        tb = tb.tb_next
    return None


def is_close_error(exc: BaseException) -> bool:
    """Whether an SDK ``APIError`` reports a WebSocket close (not a JSON error message)."""
    code = getattr(exc, "code", None)
    return (isinstance(exc, genai_errors.APIError) and isinstance(code, int) and 1000 <= code <= 4999
            and not isinstance(getattr(exc, "details", None), dict))
