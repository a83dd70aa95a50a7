"""Parsing of client frames and encoding of server frames of the Live wire protocol.

Client frames are parsed the way a proto3 JSON parser reads them: every key may be
spelled in snake_case or lowerCamelCase (the SDK mixes both), bytes may use the standard
or the URL-safe base64 alphabet, padded or not. Anything malformed raises
:class:`ProtocolError`, which the connection turns into a WebSocket close with code 1007
and a short reason, as the real service does (``live_protocol.md`` §6.2).

Server frames are built only from known lowerCamelCase top-level keys, serialised as
UTF-8 JSON and checked to stay below the SDK's 1 MiB message limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

#: WebSocket close reasons are limited to 123 bytes (RFC 6455 §5.5).
MAX_CLOSE_REASON_BYTES = 123
#: The SDK's ``websockets.connect`` keeps the default ``max_size`` of 1 MiB.
MAX_SERVER_MESSAGE_BYTES = 1 << 20
#: Top-level keys a server message may carry (the SDK crashes on unknown-only keys).
SERVER_MESSAGE_KEYS = frozenset({
    "setupComplete", "serverContent", "toolCall", "toolCallCancellation", "goAway",
    "sessionResumptionUpdate", "usageMetadata", "voiceActivityDetectionSignal", "voiceActivity",
})
#: Top-level keys of a client message.
CLIENT_MESSAGE_KEYS = ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")
#: Keys of ``realtimeInput``.
REALTIME_INPUT_KEYS = ("mediaChunks", "audio", "video", "text", "activityStart", "activityEnd", "audioStreamEnd")

_B64_CHARS = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")


class ProtocolError(Exception):
    """A client frame the service would refuse; closes the connection with ``code``."""

    def __init__(self, reason: str, code: int = 1007, detail: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason: str = truncate_reason(reason)
        #: What exactly was wrong, for the session record, when ``reason`` is the service's terse one.
        self.detail = detail


def truncate_reason(reason: str) -> str:
    """Cuts a close reason to the 123 bytes a close frame allows, on a character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", errors="ignore")


def to_snake(name: str) -> str:
    """``mimeType`` → ``mime_type``."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def to_camel(name: str) -> str:
    """``mime_type`` → ``mimeType`` (lowerCamelCase names are returned unchanged)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def unknown_field(name: str, where: str) -> ProtocolError:
    """The error the service reports for an unknown JSON field."""
    return ProtocolError(f'Invalid JSON payload received. Unknown name "{name}" at \'{where}\': Cannot find field.')


def get_field(obj: dict[str, Any], name: str, where: str, default: Any = None) -> Any:
    """Reads ``name`` (given in lowerCamelCase) under either spelling.

    Raises:
        ProtocolError: when both spellings are present (a proto parser refuses this too).
    """
    camel, snake = name, to_snake(name)
    if camel in obj and snake in obj and camel != snake:
        raise ProtocolError(f"Invalid JSON payload received. Field '{where}.{camel}' given twice ({snake}).")
    if camel in obj:
        return obj[camel]
    return obj.get(snake, default)


def check_fields(obj: Any, allowed: tuple[str, ...] | frozenset[str], where: str) -> dict[str, Any]:
    """Requires ``obj`` to be a JSON object whose keys are all in ``allowed`` (any spelling)."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"Invalid JSON payload received. '{where}' must be an object, got {type(obj).__name__}.")
    for key in obj:
        if to_camel(key) not in allowed:
            raise unknown_field(key, where)
    return obj


def decode_base64(value: Any, where: str) -> bytes:
    """Decodes proto3-JSON bytes: standard or URL-safe alphabet, padded or not."""
    if not isinstance(value, str):
        raise ProtocolError(f"Invalid value at '{where}' (TYPE_BYTES), expected a base64 string.")
    if not _B64_CHARS.match(value):
        raise ProtocolError(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed.")
    text = value.replace("-", "+").replace("_", "/").rstrip("=")
    if len(text) % 4 == 1:
        raise ProtocolError(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed.")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed.") from None


def parse_mime(mime: Any, where: str) -> tuple[str, dict[str, str]]:
    """Splits ``audio/pcm;rate=16000`` into ``("audio/pcm", {"rate": "16000"})``."""
    if not isinstance(mime, str) or "/" not in mime:
        raise ProtocolError(f"Invalid mime type at '{where}': {mime!r}.")
    base, *params = [p.strip() for p in mime.split(";")]
    parsed: dict[str, str] = {}
    for p in params:
        key, sep, val = p.partition("=")
        if not sep or not key.strip():
            raise ProtocolError(f"Invalid mime type parameter at '{where}': {mime!r}.")
        parsed[key.strip().lower()] = val.strip()
    return base.lower(), parsed


def parse_bool(value: Any, where: str) -> bool:
    """A proto3-JSON bool (``true``/``false``, or the strings ``"true"``/``"false"``)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ProtocolError(f"Invalid value at '{where}' (TYPE_BOOL), {json.dumps(value)[:40]}")


# ---------------------------------------------------------------------------------------
# Client → server


@dataclass(frozen=True)
class VadSettings:
    """``realtimeInputConfig`` as far as the emulator acts on it."""

    automatic: bool = True
    start_sensitivity: str | None = None
    end_sensitivity: str | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    barge_in: bool = True  # activityHandling != NO_INTERRUPTION


@dataclass(frozen=True)
class SetupRequest:
    """The parts of the ``setup`` frame the emulator uses; ``raw`` is the frame as sent."""

    raw: dict[str, Any]
    model: str
    response_modalities: tuple[str, ...]
    media_resolution: str | None
    vad: VadSettings
    resumption_enabled: bool
    resumption_handle: str | None
    input_transcription: bool
    output_transcription: bool
    voice_name: str | None
    tools: Any = None  # ``setup.tools`` as sent (validated by :func:`duplex.emulator.tools.parse_tools`)


def parse_client_frame(data: str | bytes) -> tuple[str, Any]:
    """Decodes one client frame into ``(kind, body)``, ``kind`` one of :data:`CLIENT_MESSAGE_KEYS`."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"Invalid JSON payload received. {exc.__class__.__name__}: {exc}") from None
    check_fields(obj, CLIENT_MESSAGE_KEYS, "BidiGenerateContentClientMessage")
    if len(obj) != 1:
        names = ", ".join(sorted(obj)) or "nothing"
        raise ProtocolError(f"A client message must set exactly one of {', '.join(CLIENT_MESSAGE_KEYS)}; got {names}.")
    (key, body), = obj.items()
    return to_camel(key), body


def parse_setup(body: Any) -> SetupRequest:
    """Validates a ``setup`` body and extracts what the emulator acts on."""
    if not isinstance(body, dict):
        raise ProtocolError("Invalid JSON payload received. 'setup' must be an object.")
    model = get_field(body, "model", "setup")
    if not isinstance(model, str) or not model.strip():
        raise ProtocolError("Invalid argument: setup.model is required (e.g. models/gemini-3.8-live).")
    gen = get_field(body, "generationConfig", "setup") or {}
    if not isinstance(gen, dict):
        raise ProtocolError("Invalid JSON payload received. 'setup.generationConfig' must be an object.")
    modalities = get_field(gen, "responseModalities", "setup.generationConfig") or ["AUDIO"]
    if not isinstance(modalities, list) or not all(m in ("AUDIO", "TEXT") for m in modalities):
        raise ProtocolError(f"Invalid value at 'setup.generation_config.response_modalities': {modalities!r}")
    if len(modalities) != 1:
        raise ProtocolError("Only one response modality (AUDIO or TEXT) is supported per session.")
    media_resolution = get_field(gen, "mediaResolution", "setup.generationConfig")
    voice = None
    speech = get_field(gen, "speechConfig", "setup.generationConfig")
    if isinstance(speech, dict):
        vc = get_field(speech, "voiceConfig", "speechConfig") or {}
        pvc = get_field(vc, "prebuiltVoiceConfig", "voiceConfig") if isinstance(vc, dict) else None
        voice = get_field(pvc, "voiceName", "prebuiltVoiceConfig") if isinstance(pvc, dict) else None
    ric = get_field(body, "realtimeInputConfig", "setup") or {}
    if not isinstance(ric, dict):
        raise ProtocolError("Invalid JSON payload received. 'setup.realtimeInputConfig' must be an object.")
    aad = get_field(ric, "automaticActivityDetection", "realtimeInputConfig") or {}
    if not isinstance(aad, dict):
        raise ProtocolError("Invalid JSON payload received. 'automaticActivityDetection' must be an object.")
    disabled = parse_bool(get_field(aad, "disabled", "automaticActivityDetection", False), "disabled")
    vad = VadSettings(
        automatic=not disabled,
        start_sensitivity=get_field(aad, "startOfSpeechSensitivity", "automaticActivityDetection"),
        end_sensitivity=get_field(aad, "endOfSpeechSensitivity", "automaticActivityDetection"),
        prefix_padding_ms=_opt_int(get_field(aad, "prefixPaddingMs", "automaticActivityDetection"), "prefixPaddingMs"),
        silence_duration_ms=_opt_int(get_field(aad, "silenceDurationMs", "automaticActivityDetection"),
                                     "silenceDurationMs"),
        barge_in=get_field(ric, "activityHandling", "realtimeInputConfig") != "NO_INTERRUPTION",
    )
    sr = get_field(body, "sessionResumption", "setup")
    if sr is not None and not isinstance(sr, dict):
        raise ProtocolError("Invalid JSON payload received. 'setup.sessionResumption' must be an object.")
    handle = get_field(sr, "handle", "sessionResumption") if sr else None
    if handle is not None and not isinstance(handle, str):
        raise ProtocolError("Invalid value at 'setup.session_resumption.handle' (TYPE_STRING).")
    return SetupRequest(
        raw=body,
        model=model,
        response_modalities=tuple(modalities),
        media_resolution=media_resolution,
        vad=vad,
        resumption_enabled=sr is not None,
        resumption_handle=handle or None,
        input_transcription=get_field(body, "inputAudioTranscription", "setup") is not None,
        output_transcription=get_field(body, "outputAudioTranscription", "setup") is not None,
        voice_name=voice if isinstance(voice, str) else None,
        tools=get_field(body, "tools", "setup"),
    )


def _opt_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"Invalid value at '{where}' (TYPE_INT32), {value!r}") from None


@dataclass(frozen=True)
class Blob:
    """A decoded ``{data, mimeType}`` blob."""

    data: bytes
    mime_type: str
    base_type: str
    params: dict[str, str] = field(default_factory=dict)


def parse_blob(obj: Any, where: str) -> Blob:
    """Decodes a ``Blob`` (``data`` base64 + ``mimeType``)."""
    check_fields(obj, ("data", "mimeType", "displayName"), where)
    mime = get_field(obj, "mimeType", where)
    base, params = parse_mime(mime, f"{where}.mime_type")
    data = decode_base64(get_field(obj, "data", where, ""), f"{where}.data")
    return Blob(data=data, mime_type=mime, base_type=base, params=params)


def parse_realtime_input(body: Any) -> list[tuple[str, Any]]:
    """Splits a ``realtimeInput`` body into ``(kind, value)`` items in field order.

    ``kind`` is one of :data:`REALTIME_INPUT_KEYS`; blobs are decoded to :class:`Blob`,
    ``mediaChunks`` to a list of :class:`Blob`.
    """
    check_fields(body, REALTIME_INPUT_KEYS, "realtime_input")
    items: list[tuple[str, Any]] = []
    for key, value in body.items():
        kind = to_camel(key)
        where = f"realtime_input.{to_snake(kind)}"
        if kind in ("audio", "video"):
            items.append((kind, parse_blob(value, where)))
        elif kind == "mediaChunks":
            if not isinstance(value, list):
                raise ProtocolError(f"Invalid value at '{where}', expected a list.")
            items.append((kind, [parse_blob(v, f"{where}[{i}]") for i, v in enumerate(value)]))
        elif kind == "text":
            if not isinstance(value, str):
                raise ProtocolError(f"Invalid value at '{where}' (TYPE_STRING).")
            items.append((kind, value))
        elif kind in ("activityStart", "activityEnd"):
            check_fields(value, (), where)
            items.append((kind, None))
        else:  # audioStreamEnd
            if parse_bool(value, where):
                items.append((kind, None))
    return items


@dataclass(frozen=True)
class ClientContent:
    """A ``clientContent`` message: the user text of its turns and ``turnComplete``."""

    texts: tuple[str, ...]
    turn_count: int
    turn_complete: bool


def parse_client_content(body: Any) -> ClientContent:
    """Validates ``clientContent`` and collects the text of its ``user`` turns."""
    check_fields(body, ("turns", "turnComplete"), "client_content")
    turns = get_field(body, "turns", "client_content") or []
    if not isinstance(turns, list):
        raise ProtocolError("Invalid value at 'client_content.turns', expected a list.")
    texts: list[str] = []
    for i, turn in enumerate(turns):
        check_fields(turn, ("parts", "role"), f"client_content.turns[{i}]")
        parts = get_field(turn, "parts", "turns") or []
        if not isinstance(parts, list):
            raise ProtocolError(f"Invalid value at 'client_content.turns[{i}].parts', expected a list.")
        for part in parts:
            if not isinstance(part, dict):
                raise ProtocolError(f"Invalid value at 'client_content.turns[{i}].parts', expected objects.")
            text = get_field(part, "text", "part")
            if isinstance(text, str) and get_field(turn, "role", "turn", "user") == "user":
                texts.append(text)
            blob = get_field(part, "inlineData", "part")
            if blob is not None:
                parse_blob(blob, f"client_content.turns[{i}].parts.inline_data")
    complete = parse_bool(get_field(body, "turnComplete", "client_content", False), "client_content.turn_complete")
    return ClientContent(texts=tuple(texts), turn_count=len(turns), turn_complete=complete)


# ---------------------------------------------------------------------------------------
# Server → client


def encode_server_message(message: dict[str, Any]) -> bytes:
    """Serialises a server message to UTF-8 JSON, checking keys and the 1 MiB limit."""
    if not message:
        raise ValueError("empty server message")
    for key in message:
        if key not in SERVER_MESSAGE_KEYS:
            raise ValueError(f"unknown server message key {key!r} (the SDK cannot parse it)")
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) >= MAX_SERVER_MESSAGE_BYTES:
        raise ValueError(f"server message of {len(data)} bytes exceeds the client's 1 MiB limit")
    return data


def format_duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` in JSON form: ``"10s"``, ``"1.500s"``."""
    seconds = max(0.0, seconds)
    nanos = round(seconds * 1e9)
    whole, frac = divmod(nanos, 1_000_000_000)
    if frac == 0:
        return f"{whole}s"
    if frac % 1_000_000 == 0:
        return f"{whole}.{frac // 1_000_000:03d}s"
    if frac % 1000 == 0:
        return f"{whole}.{frac // 1000:06d}s"
    return f"{whole}.{frac:09d}s"


def b64_standard(data: bytes) -> str:
    """Standard, padded, single-line base64."""
    return base64.b64encode(data).decode("ascii")


def msg_setup_complete() -> dict[str, Any]:
    """``{"setupComplete": {}}``."""
    return {"setupComplete": {}}


def msg_audio(pcm: bytes, rate_hz: int) -> dict[str, Any]:
    """One model audio chunk as ``serverContent.modelTurn.parts[].inlineData``."""
    part = {"inlineData": {"mimeType": f"audio/pcm;rate={rate_hz}", "data": b64_standard(pcm)}}
    return {"serverContent": {"modelTurn": {"parts": [part]}}}


def msg_text(text: str) -> dict[str, Any]:
    """One model text part (TEXT response modality)."""
    return {"serverContent": {"modelTurn": {"parts": [{"text": text}]}}}


def msg_output_transcription(text: str) -> dict[str, Any]:
    """``serverContent.outputTranscription``."""
    return {"serverContent": {"outputTranscription": {"text": text}}}


def msg_input_transcription(text: str, finished: bool = True) -> dict[str, Any]:
    """``serverContent.inputTranscription``."""
    body: dict[str, Any] = {"text": text}
    if finished:
        body["finished"] = True
    return {"serverContent": {"inputTranscription": body}}


def msg_server_flag(name: str) -> dict[str, Any]:
    """``{"serverContent": {name: true}}`` for interrupted / generationComplete / turnComplete."""
    if name not in ("interrupted", "generationComplete", "turnComplete"):
        raise ValueError(name)
    return {"serverContent": {name: True}}


def msg_usage(prompt_tokens: int, response_tokens: int, prompt_modality: str = "AUDIO") -> dict[str, Any]:
    """``usageMetadata`` with token counts (~25 tokens per second of audio)."""
    return {"usageMetadata": {
        "promptTokenCount": prompt_tokens,
        "responseTokenCount": response_tokens,
        "totalTokenCount": prompt_tokens + response_tokens,
        "promptTokensDetails": [{"modality": prompt_modality, "tokenCount": prompt_tokens}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response_tokens}],
    }}


def msg_go_away(time_left_s: float) -> dict[str, Any]:
    """``goAway`` with a protobuf-Duration ``timeLeft``."""
    return {"goAway": {"timeLeft": format_duration(time_left_s)}}


def msg_resumption_update(handle: str, resumable: bool) -> dict[str, Any]:
    """``sessionResumptionUpdate``: a handle when resumable, empty otherwise."""
    return {"sessionResumptionUpdate": {"newHandle": handle if resumable else "", "resumable": resumable}}


def msg_tool_call(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """``toolCall`` with ``functionCalls`` entries ``{id, name, args}``."""
    return {"toolCall": {"functionCalls": calls}}


def msg_tool_call_cancellation(ids: list[str]) -> dict[str, Any]:
    """``toolCallCancellation``: the ids of calls the model no longer wants answered."""
    return {"toolCallCancellation": {"ids": ids}}
