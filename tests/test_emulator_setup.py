"""Setup is validated as the service does: unknown fields, bad enum values, unknown models,
TEXT answers from a model that only speaks; each refusal closes with the service's code
and wording (``live_service_behaviour.md`` §3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from google.genai import errors as genai_errors
from websockets.asyncio.client import connect as ws_connect

from duplex.emulator import LiveEmulator
from duplex.emulator.schema import check_model, validate_setup

pytestmark = pytest.mark.timeout(60)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def run(coro: Any, timeout: float = 25.0) -> Any:
    """Runs a coroutine on a fresh event loop, bounded by ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def raw_setup(setup: dict[str, Any]) -> Any:
    """Sends ``setup`` over a raw WebSocket; returns the first reply or the close frame."""
    async with LiveEmulator() as emu:
        url = emu.base_url.replace("https", "wss") + LIVE_PATH
        async with ws_connect(url, ssl=emu.ssl_context(), additional_headers={"x-goog-api-key": "k"}) as ws:
            await ws.send(json.dumps({"setup": setup}))
            try:
                return json.loads(await ws.recv())
            except websockets.ConnectionClosedError as exc:
                return exc.rcvd


async def sdk_connect(model: str, config: dict[str, Any]) -> Any:
    """Connects with the SDK; returns the APIError raised, or "ok" after setupComplete."""
    async with LiveEmulator() as emu:
        try:
            async with emu.make_client().aio.live.connect(model=model, config=config) as session:
                assert session.setup_complete is not None  # the refusal comes instead of setupComplete
        except genai_errors.APIError as exc:
            return exc
    return "ok"


RAW_REFUSED = {
    "unknown field in setup": ({"model": f"models/{MODEL}", "proactivty": {}},
                               "Invalid JSON payload received. Unknown name \"proactivty\" at 'setup': Cannot find field."),
    "typo in generationConfig": ({"model": f"models/{MODEL}", "generationConfig": {"responseModality": ["AUDIO"]}},
                                 "Invalid JSON payload received. Unknown name \"responseModality\" at "
                                 "'setup.generation_config': Cannot find field."),
    "bad modality": ({"model": f"models/{MODEL}", "generationConfig": {"responseModalities": ["VIDEO"]}},
                     "Invalid value at 'setup.generation_config.response_modalities[0]' (type.googleapis.com/"
                     "google.ai.generativelanguage.v1beta.Modality), \"VIDEO\""),
    "bad sensitivity": ({"model": f"models/{MODEL}", "realtimeInputConfig": {"automaticActivityDetection": {
        "startOfSpeechSensitivity": "START_SENSITIVITY_MAX"}}},  # the close reason is cut at 123 bytes
        "Invalid value at 'setup.realtime_input_config.automatic_activity_detection.start_of_speech_sensitivity'"),
}


@pytest.mark.parametrize("name", list(RAW_REFUSED))
def test_raw_setup_refused_with_1007_and_the_service_wording(name: str) -> None:
    setup, reason = RAW_REFUSED[name]
    frame = run(raw_setup(setup))
    assert frame.code == 1007
    assert frame.reason.startswith(reason[:123])


def test_bad_enum_the_sdk_lets_through_is_refused() -> None:
    # The SDK only warns on "SUPER_HIGH" / "low" and sends them verbatim; the service refuses.
    with pytest.warns(UserWarning):
        err = run(sdk_connect(MODEL, {"response_modalities": ["AUDIO"], "media_resolution": "low"}))
    assert err.code == 1007
    assert err.details == ("Invalid value at 'setup.generation_config.media_resolution' (type.googleapis.com/"
                           "google.ai.generativelanguage.v1beta.MediaResolution), \"low\"")[:123]


def test_unknown_model_is_1008_with_the_list_models_wording() -> None:
    err = run(sdk_connect("gemini-9-imaginary", {"response_modalities": ["AUDIO"]}))
    assert err.code == 1008
    assert err.details.startswith("models/gemini-9-imaginary is not found for API version v1beta, or is not "
                                  "supported for bidiGenerateContent. Call ListMo")
    assert len(err.details.encode()) <= 123
    ok = run(sdk_connect("gemini-9-imaginary", {"http_options": {"headers": {"x-duplex-scenario": "any_model=true"}}}))
    assert ok == "ok"


@pytest.mark.parametrize("model, code, reason", [
    (MODEL, 1007, "Cannot extract voices from a non-audio request."),
    ("gemini-3.1-flash-live-preview", 1011, "Internal error encountered."),
    ("gemini-live-2.5-flash-preview", None, None),
])
def test_text_modality_only_where_the_model_can_write(model: str, code: int | None, reason: str | None) -> None:
    result = run(sdk_connect(model, {"response_modalities": ["TEXT"]}))
    if code is None:
        assert result == "ok"
    else:
        assert (result.code, result.details) == (code, reason)


def test_a_rich_valid_setup_is_accepted_in_both_spellings() -> None:
    rich = {  # live_protocol.md §4.1, as the SDK sends it (mixed casing)
        "model": "models/gemini-live-2.5-flash-preview",
        "generationConfig": {"responseModalities": ["AUDIO"], "temperature": 0.7,
                             "mediaResolution": "MEDIA_RESOLUTION_MEDIUM",
                             "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}},
                                              "language_code": "en-US"},
                             "thinkingConfig": {"thinking_budget": 0}, "enableAffectiveDialog": True},
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant."}], "role": "user"},
        "tools": [{"functionDeclarations": [{"description": "time", "name": "get_time",
                                             "parameters": {"properties": {"tz": {"type": "STRING"}},
                                                            "type": "OBJECT"}}]}],
        "sessionResumption": {},
        "realtimeInputConfig": {"automatic_activity_detection": {
            "disabled": False, "start_of_speech_sensitivity": "START_SENSITIVITY_LOW",
            "end_of_speech_sensitivity": "END_SENSITIVITY_LOW", "prefix_padding_ms": 20, "silence_duration_ms": 100},
            "activity_handling": "NO_INTERRUPTION", "turn_coverage": "TURN_INCLUDES_ALL_INPUT"},
        "contextWindowCompression": {"trigger_tokens": 25600, "sliding_window": {"target_tokens": 12800}},
        "inputAudioTranscription": {}, "outputAudioTranscription": {},
        "proactivity": {"proactive_audio": True},
    }
    validate_setup(rich)
    assert run(raw_setup(rich)) == {"setupComplete": {}}
    check_model("models/gemini-3.8-live", ("AUDIO",), "v1beta")
