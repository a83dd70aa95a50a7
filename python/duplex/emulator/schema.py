"""What the service accepts in ``setup``: known fields, enum values and models.

:func:`validate_setup` walks the ``setup`` message the way the service's proto3 JSON
parser does (both key spellings) and refuses what it would refuse, with its wording
(``live_service_behaviour.md`` §3):

* an unknown field: 1007 ``Invalid JSON payload received. Unknown name "proactivty" at
  'setup': Cannot find field.``
* a bad enum value: 1007 ``Invalid value at 'setup.generation_config.media_resolution'
  (type.googleapis.com/google.ai.generativelanguage.v1beta.MediaResolution), "SUPER_HIGH"``

:func:`check_model` refuses models the service does not serve for ``bidiGenerateContent``
(1008, the ListModels wording) and a TEXT response modality where the model only speaks
(native audio: 1007 ``Cannot extract voices from a non-audio request.``; 3.x Live models:
1011 ``Internal error encountered.``).
"""

from __future__ import annotations

from typing import Any

from .protocol import ProtocolError, to_camel, to_snake, unknown_field

ANY = "any"  # a value the emulator does not look into (a Struct, a schema, free text)


def _enum(name: str, *values: str) -> tuple[str, str, tuple[str, ...]]:
    return ("enum", name, values)


_CONTENT = {"parts": ANY, "role": ANY}
_SCHEMA_SPEECH = {
    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": ANY}, "replicatedVoiceConfig": ANY},
    "languageCode": ANY,
    "multiSpeakerVoiceConfig": ANY,
}
_MODALITY = _enum("Modality", "MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO")
_GENERATION_CONFIG: dict[str, Any] = {
    "candidateCount": ANY, "maxOutputTokens": ANY, "temperature": ANY, "topP": ANY, "topK": ANY,
    "presencePenalty": ANY, "frequencyPenalty": ANY, "seed": ANY, "stopSequences": ANY,
    "responseModalities": ("list", _MODALITY),
    "speechConfig": _SCHEMA_SPEECH,
    "mediaResolution": _enum("MediaResolution", "MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW",
                             "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH"),
    "thinkingConfig": {"includeThoughts": ANY, "thinkingBudget": ANY,
                       "thinkingLevel": _enum("ThinkingConfig.ThinkingLevel", "THINKING_LEVEL_UNSPECIFIED",
                                              "MINIMAL", "LOW", "MEDIUM", "HIGH")},
    "enableAffectiveDialog": ANY,
    "responseMimeType": ANY, "responseSchema": ANY, "responseJsonSchema": ANY, "responseLogprobs": ANY,
    "logprobs": ANY, "enableEnhancedCivicAnswers": ANY, "mediaResolutionConfig": ANY,
}
_SETUP: dict[str, Any] = {
    "model": ANY,
    "generationConfig": _GENERATION_CONFIG,
    "systemInstruction": _CONTENT,
    "tools": ANY,  # validated by duplex.emulator.tools.parse_tools
    "realtimeInputConfig": {
        "automaticActivityDetection": {
            "disabled": ANY,
            "startOfSpeechSensitivity": _enum("StartSensitivity", "START_SENSITIVITY_UNSPECIFIED",
                                              "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"),
            "endOfSpeechSensitivity": _enum("EndSensitivity", "END_SENSITIVITY_UNSPECIFIED",
                                            "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"),
            "prefixPaddingMs": ANY,
            "silenceDurationMs": ANY,
        },
        "activityHandling": _enum("RealtimeInputConfig.ActivityHandling", "ACTIVITY_HANDLING_UNSPECIFIED",
                                  "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"),
        "turnCoverage": _enum("RealtimeInputConfig.TurnCoverage", "TURN_COVERAGE_UNSPECIFIED",
                              "TURN_INCLUDES_ONLY_ACTIVITY", "TURN_INCLUDES_ALL_INPUT",
                              "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"),
    },
    "sessionResumption": {"handle": ANY, "transparent": ANY},
    "contextWindowCompression": {"triggerTokens": ANY, "slidingWindow": {"targetTokens": ANY}},
    "inputAudioTranscription": {"languageCodes": ANY},
    "outputAudioTranscription": {"languageCodes": ANY},
    "proactivity": {"proactiveAudio": ANY},
    "historyConfig": {"initialHistoryInClientContent": ANY},
}


def validate_setup(body: Any, api_version: str = "v1beta") -> None:
    """Refuses unknown fields and bad enum values in a ``setup`` message (1007).

    Raises:
        ProtocolError: with the service's wording.
    """
    _walk(body, _SETUP, "setup", api_version)


def _walk(value: Any, schema: Any, where: str, version: str) -> None:
    if schema == ANY or value is None:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ProtocolError(f"Invalid JSON payload received. Expected an object at '{where}'.")
        for key, item in value.items():
            camel = to_camel(key)
            if camel not in schema:
                raise unknown_field(key, where)
            _walk(item, schema[camel], f"{where}.{to_snake(camel)}", version)
        return
    kind = schema[0]
    if kind == "list":
        if not isinstance(value, list):
            raise ProtocolError(f"Invalid value at '{where}', expected a list.")
        for i, item in enumerate(value):
            _walk(item, schema[1], f"{where}[{i}]", version)
        return
    _, type_name, values = schema
    if value not in values:
        text = value if isinstance(value, str) else repr(value)
        raise ProtocolError(f"Invalid value at '{where}' (type.googleapis.com/google.ai.generativelanguage."
                            f"{version}.{type_name}), \"{text}\"")


#: Live models the emulator serves, as the service does for ``bidiGenerateContent``
#: (names from the docs; verify against ListModels before relying on one).
LIVE_MODELS = frozenset({
    "gemini-3.8-live",
    "gemini-3.1-flash-live-preview",
    "gemini-2.5-flash-native-audio-latest",
    "gemini-2.5-flash-native-audio-preview-09-2025",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-2.5-flash-preview-native-audio-dialog",
    "gemini-2.5-flash-exp-native-audio-thinking-dialog",
    "gemini-live-2.5-flash-preview",
    "gemini-live-2.5-flash-native-audio",
    "gemini-2.0-flash-live-001",
    "gemini-2.0-flash-exp",
})
#: Models that can answer in TEXT (half-cascade: a text model with speech synthesis).
TEXT_CAPABLE_MODELS = frozenset({"gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001", "gemini-2.0-flash-exp"})


def model_id(model: str) -> str:
    """``models/gemini-3.8-live`` → ``gemini-3.8-live``."""
    return model.split("/", 1)[1] if model.startswith("models/") else model


def check_model(model: str, modalities: tuple[str, ...], api_version: str, any_model: bool = False) -> None:
    """Refuses an unknown model (1008) and TEXT answers from a model that only speaks.

    Raises:
        ProtocolError: 1008 for an unknown model, 1007/1011 for TEXT on an audio-only model.
    """
    name = model_id(model)
    if not any_model and name not in LIVE_MODELS:
        raise ProtocolError(f"models/{name} is not found for API version {api_version}, or is not supported for "
                            "bidiGenerateContent. Call ListModels to see the list of available models and their "
                            "supported methods.", code=1008)
    if "TEXT" in modalities and name in LIVE_MODELS and name not in TEXT_CAPABLE_MODELS:
        if "native-audio" in name:
            raise ProtocolError("Cannot extract voices from a non-audio request.")
        raise ProtocolError("Internal error encountered.", code=1011)
