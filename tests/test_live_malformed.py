"""Malformed server messages: each kind has a decided outcome, an event, and never a raw
exception (issue 10, item 4). The server is the raw fake in live_fake.py."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from conftest import dominant_freq
from live_fake import audio_message, flag, tone_pcm
from test_live_client import answered, converse, kinds

from duplex.live import LiveConfig, LiveSessionError

ODD = base64.b64encode(b"\x01\x02\x03").decode()

#: (name, frames the server sends before a valid answer). Each is skipped and counted;
#: the conversation goes on and the answer after it plays.
SKIPPED = [
    ("non_json_text", ["hello, I am not JSON"]),
    ("non_json_binary", [b"\x00\x01garbage"]),
    ("binary_junk", [bytes(range(256))]),
    ("json_array", ["[1, 2, 3]"]),
    ("json_scalar", ["42"]),
    ("only_unknown_keys", [{"someFutureMessage": {"x": 1}}]),
    ("bad_base64", [{"serverContent": {"modelTurn": {"parts": [{"inlineData": {
        "mimeType": "audio/pcm;rate=24000", "data": "!!!not base64!!!"}}]}}}]),
    ("server_content_not_an_object", [{"serverContent": "nope"}]),
    ("parts_not_a_list", [{"serverContent": {"modelTurn": {"parts": {"a": 1}}}}]),
    ("deep_nesting", ['{"serverContent": ' + "[" * 100_000 + "]" * 100_000 + "}"]),
    ("go_away_number", [{"goAway": {"timeLeft": {"seconds": 5}}}]),
    ("many_in_a_row", ["junk"] * 10),
]

#: Kinds that are not skipped but handled: the message is used as far as it makes sense.
HANDLED = [
    ("unknown_keys_beside_known_ones", [{"serverContent": {"turnComplete": False, "bogus": 1}, "alsoBogus": {}}]),
    ("empty_object", [{}]),
    ("json_null", ["null"]),
    ("tool_call_without_calls", [{"toolCall": {}}]),
    ("text_part_among_audio", [{"serverContent": {"modelTurn": {"parts": [{"text": "thinking..."}]}}}]),
    ("audio_of_another_mime", [{"serverContent": {"modelTurn": {"parts": [{"inlineData": {
        "mimeType": "image/png", "data": ODD}}]}}}]),
    ("nonsense_go_away", [{"goAway": {"timeLeft": "forever"}}, {"goAway": {}}]),
    ("cancellation_of_unknown_calls", [{"toolCallCancellation": {"ids": ["nobody", "knows"]}}]),
]


def played_out(events) -> bool:
    """The answer ended and its audio has played."""
    return answered(events) and events[-1].kind == "stats" and events[-1].data["playback_buffered_ms"] == 0


FAST_STATS = LiveConfig(stats_interval_s=0.05)


def _script(frames):
    async def script(c):
        await c.accept_setup()
        if c.index > 0:
            await asyncio.sleep(30)
            return
        for frame in frames:
            await c.send(frame)
        await c.stream(tone_pcm(1000, 0.3, 0.3))
        await c.send({"serverContent": {"outputTranscription": {"text": "still here"}}})
        await c.send(flag("generationComplete"))
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    return script


def _loud_s(engine) -> float:
    """Seconds of model audio played (counted by the engine)."""
    return engine.stats().frames_played / 48_000


@pytest.mark.parametrize("name,frames", SKIPPED, ids=[n for n, _ in SKIPPED])
def test_malformed_message_is_skipped_counted_and_the_session_goes_on(virtual_engine, name, frames):
    engine = virtual_engine(prebuffer_ms=0)
    conv, events, server = asyncio.run(converse(_script(frames), engine, FAST_STATS, until=played_out))
    skipped = [e for e in events if e.kind == "malformed"]
    assert len(skipped) == len(frames) == conv.malformed_messages
    assert all(e.text and e.data["kind"] and not e.data["fatal"] for e in skipped)
    assert ("model", "still here") in conv.transcript
    assert "error" not in kinds(events)
    assert _loud_s(engine) == pytest.approx(0.3, abs=0.005)


@pytest.mark.parametrize("name,frames", HANDLED, ids=[n for n, _ in HANDLED])
def test_odd_but_valid_messages_are_used_as_far_as_they_make_sense(virtual_engine, name, frames):
    engine = virtual_engine(prebuffer_ms=0)
    conv, events, server = asyncio.run(converse(_script(frames), engine, FAST_STATS, until=played_out))
    assert ("model", "still here") in conv.transcript
    assert "error" not in kinds(events)
    assert _loud_s(engine) == pytest.approx(0.3, abs=0.005)
    if name == "nonsense_go_away":
        # An unreadable timeLeft is "now": the client moves to a new connection at once.
        assert len(server.connections) >= 1 and "go_away" in kinds(events)


def test_odd_length_audio_keeps_the_stream_aligned(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0)
    pcm = tone_pcm(1000, 0.3, 0.3)

    async def script(c):
        await c.accept_setup()
        # A sample split across two messages (3 bytes, then the rest): not a reason to
        # shift every later sample by a byte.
        await c.send(audio_message(pcm[:3]))
        await c.stream(pcm[3:])
        await c.send(flag("generationComplete"))
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    conv, events, _ = asyncio.run(converse(script, engine, FAST_STATS, until=played_out))
    rec = engine.recording()[:, 0]
    loud = rec[np.flatnonzero(np.abs(rec) > 1e-3)[0] :][: int(0.28 * 48_000)]
    # Still a clean 1 kHz tone at its level (a byte shift would turn it into full-scale noise).
    assert np.max(np.abs(loud)) < 0.32
    assert conv._output.odd_bytes == 1


def test_a_json_error_object_ends_the_session_saying_what_the_server_sent(virtual_engine):
    engine = virtual_engine()
    frames = [{"error": {"code": 400, "message": "quota exhausted", "status": "RESOURCE_EXHAUSTED"}}]
    with pytest.raises(LiveSessionError, match="the server sent an error message") as info:
        asyncio.run(converse(_script(frames), engine))
    assert "quota exhausted" in str(info.value)


def test_too_many_malformed_messages_in_a_row_end_the_session(virtual_engine):
    engine = virtual_engine()
    with pytest.raises(LiveSessionError, match="5 unusable messages in a row"):
        asyncio.run(converse(_script(["junk"] * 8), engine, LiveConfig(max_malformed_messages=5)))


@pytest.mark.parametrize("first", ["not json", {"serverContent": {"turnComplete": True}}, bytes(range(256))])
def test_a_first_message_that_is_not_setup_complete_is_a_clear_error(virtual_engine, first):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup(reply=False)
        await c.send(first)
        await asyncio.sleep(30)

    with pytest.raises(LiveSessionError, match="setupComplete"):
        asyncio.run(converse(script, engine))


def test_audio_at_another_rate_is_resampled_not_misplayed(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0)

    async def script(c):
        await c.accept_setup()
        await c.send(audio_message(tone_pcm(1000, 0.5, 0.3, rate=16_000), rate=16_000))
        await c.send(flag("generationComplete"))
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    conv, events, _ = asyncio.run(converse(script, engine, FAST_STATS, until=played_out))
    assert _loud_s(engine) == pytest.approx(0.5, abs=0.01)  # not 0.33 s played too fast
    rec = engine.recording()[:, 0]
    loud = rec[np.flatnonzero(np.abs(rec) > 1e-3)[0] :][: int(0.4 * 48_000)]
    assert dominant_freq(loud, 48_000) == pytest.approx(1000, abs=5)
    assert conv._output.resampled_chunks == 1
