"""LiveConversation against a scripted raw server: barge-in, goAway, network bounds, text,
mute and transcripts, each as the real service can do it (see live_service_behaviour.md)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from conftest import dominant_freq
from live_fake import FakeLiveServer, audio_message, flag, tone_pcm
from test_engine_async import NativeSpy

import duplex
from duplex.live import LiveConfig, LiveConversation, LiveSessionError
from duplex.live.transport import parse_time_left


async def converse(script, engine, config=None, *, until=None, timeout=15.0, duration=None, during=None):
    """Runs a conversation against `script` until `until(events)`; returns (conv, events, server)."""
    async with FakeLiveServer(script) as server:
        conv = LiveConversation(engine, server.make_client(), config or LiveConfig())
        events = []

        async def watch():
            async for ev in conv.events():
                events.append(ev)
                if until is not None and until(events):
                    conv.stop()

        watcher = asyncio.create_task(watch())
        extra = asyncio.create_task(during(conv)) if during else None
        try:
            await asyncio.wait_for(conv.run(duration), timeout)
        finally:
            await asyncio.wait_for(watcher, 5)
            if extra is not None:
                extra.cancel()
        assert not server.errors, server.errors
        return conv, events, server


def kinds(events):
    return [e.kind for e in events]


def answered(events):
    """A turn_complete that ends an answer (not an interrupted turn)."""
    return any(e.kind == "turn_complete" and not e.data.get("interrupted") and not e.data.get("connection_ended")
               for e in events)


def mark_interrupts(engine):
    """Records frames_rendered at each interrupt() (the flush point in the recording)."""
    marks = []
    played_at = engine.played_at_interrupts = []
    real = engine.interrupt

    def spy():
        report = real()
        stats = engine.stats()
        marks.append(stats.frames_rendered)
        played_at.append(stats.frames_played)
        return report

    engine.interrupt = spy
    return marks


def played_since_flush_s(engine) -> float:
    """Seconds of model audio played after the first flush (counted by the engine, so an
    underrun on a loaded machine does not change it)."""
    return (engine.stats().frames_played - engine.played_at_interrupts[0]) / 48_000


def after_flush(engine, mark):
    """The loud part of the recording after a flush (one period plus the fade later)."""
    rec = engine.recording()[:, 0]
    post = rec[mark + 480 + 240 :]
    loud = np.flatnonzero(np.abs(post) > 1e-3)
    return post[loud[0] : loud[-1] + 1] if len(loud) else post[:0]


async def mic_flowing(c):
    await c.wait_for(lambda m: "realtime_input" in m or "realtimeInput" in m)


# -- barge-in ------------------------------------------------------------------------------


@pytest.mark.parametrize("turn_complete", ["never", "late", "merged"])
def test_audio_after_interrupted_is_the_next_answer_and_plays(virtual_engine, turn_complete):
    # A small playback ring: most of the first answer waits in the client's queue, which
    # the flush must empty too.
    engine = virtual_engine(prebuffer_ms=0, playback_buffer_ms=500)
    marks = mark_interrupts(engine)
    second = tone_pcm(1000, 0.6, 0.3)

    async def script(c):
        await c.accept_setup()
        await mic_flowing(c)
        await c.stream(tone_pcm(440, 2.0))  # far faster than real time
        await asyncio.sleep(0.4)
        await c.send(flag("interrupted"))
        if turn_complete == "merged":
            await c.send(audio_message(second[:1920], turnComplete=True))  # the old turn's end rides along
            await c.stream(second[1920:])
        else:
            await c.stream(second)
        await c.send(flag("generationComplete"))
        await asyncio.sleep(0.9)
        if turn_complete == "late":
            await c.send(flag("turnComplete"))  # the interrupted turn's, after the new audio
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    conv, events, _ = asyncio.run(converse(script, engine, until=lambda ev: ev[-1].kind == "turn_complete"
                                           and kinds(ev).count("turn_complete") >= (1 if turn_complete == "never" else 2)))
    assert len(marks) == 1
    played = after_flush(engine, marks[0])
    # All of the second answer played, and nothing of the first after the flush.
    assert played_since_flush_s(engine) == pytest.approx(0.6, abs=0.01)
    assert dominant_freq(played, 48_000) == pytest.approx(1000, abs=5)
    assert np.max(np.abs(played)) < 0.35  # the 0.5-amplitude first answer never returns


def test_a_reconnect_between_interrupted_and_turn_complete_keeps_the_next_answer(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0)
    marks = mark_interrupts(engine)

    async def script(c):
        await c.accept_setup()
        if c.index == 0:
            await c.send({"sessionResumptionUpdate": {"newHandle": "handle-1", "resumable": True}})
            await mic_flowing(c)
            await c.stream(tone_pcm(440, 1.5))
            await asyncio.sleep(0.3)
            await c.send(flag("interrupted"))
            await c.close(1011, "Internal error encountered.")
            return
        assert c.setup["sessionResumption"] == {"handle": "handle-1"}
        await c.stream(tone_pcm(1000, 0.6, 0.3))
        await c.send(flag("generationComplete"))
        await asyncio.sleep(0.8)
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    conv, events, server = asyncio.run(converse(script, engine, until=answered))
    assert len(server.connections) == 2
    played = after_flush(engine, marks[0])
    assert played_since_flush_s(engine) == pytest.approx(0.6, abs=0.01)
    assert dominant_freq(played, 48_000) == pytest.approx(1000, abs=5)


def test_nothing_on_the_event_loop_waits_on_the_engine(virtual_engine):
    # A 300 ms ring and a 3 s burst: the client must wait for room, never on the loop.
    engine = virtual_engine(prebuffer_ms=0, playback_buffer_ms=300)

    async def script(c):
        await c.accept_setup()
        await mic_flowing(c)
        await c.stream(tone_pcm(440, 3.0))
        await c.send(flag("generationComplete"))
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    async def main():
        spy = NativeSpy(engine._native, threading.get_ident())
        engine._native = spy
        await converse(script, engine, until=lambda ev: ev[-1].kind == "stats"
                       and ev[-1].data["playback_buffered_ms"] == 0 and answered(ev), timeout=20)
        return spy

    spy = asyncio.run(main())
    engine._native = spy._native
    assert spy.blocking_on_loop == []
    assert engine.stats().frames_played / 48_000 == pytest.approx(3.0, abs=0.005)


# -- goAway --------------------------------------------------------------------------------


def test_go_away_lets_the_answer_finish_then_resumes(virtual_engine):
    engine = virtual_engine(prebuffer_ms=300)  # real-time delivery: absorb its jitter
    answer = tone_pcm(440, 2.4)

    async def script(c):
        await c.accept_setup()
        await c.send({"sessionResumptionUpdate": {"newHandle": f"handle-{c.index}-a", "resumable": True}})
        if c.index > 0:
            await asyncio.sleep(30)
            return
        await mic_flowing(c)
        half = len(answer) // 2 // 2 * 2
        await c.stream(answer[:half], speed=1.0)
        await c.send({"goAway": {"timeLeft": "3s"}})
        await c.stream(answer[half:], speed=1.0)  # 1.2 s more of the answer, within the time left
        await c.send({"serverContent": {"outputTranscription": {"text": "every word"}}})
        await c.send(flag("generationComplete"))
        await c.send(flag("turnComplete"))
        await c.send({"sessionResumptionUpdate": {"newHandle": "handle-0-b", "resumable": True}})
        await asyncio.sleep(30)

    conv, events, server = asyncio.run(converse(
        script, engine, LiveConfig(stats_interval_s=0.05),
        until=lambda ev: kinds(ev).count("connected") >= 2 and ev[-1].kind == "stats"
        and ev[-1].data["playback_buffered_ms"] == 0))
    first, second = server.connections[:2]
    assert first.closed_by_client
    # The client stayed for the whole answer and resumed with the handle issued after it.
    assert second.setup["sessionResumption"] == {"handle": "handle-0-b"}
    assert ("model", "every word") in conv.transcript
    reconnect = [e for e in events if e.kind == "reconnecting"][0]
    assert reconnect.time - [e for e in events if e.kind == "go_away"][0].time > 1.0
    rec = engine.recording()[:, 0]
    loud = np.flatnonzero(np.abs(rec) > 1e-3)
    assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(2.4, abs=0.03)


def test_go_away_with_the_answer_still_running_at_the_deadline_moves_in_time(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0)

    async def script(c):
        await c.accept_setup()
        await c.send({"sessionResumptionUpdate": {"newHandle": f"handle-{c.index}", "resumable": True}})
        if c.index == 0:
            await mic_flowing(c)
            await c.stream(tone_pcm(440, 0.4))
            await c.send({"goAway": {"timeLeft": "3s"}})
            sent.append(time.monotonic())
            await c.stream(tone_pcm(440, 6.0), speed=1.0)  # longer than the time left
        await asyncio.sleep(30)

    sent: list[float] = []
    conv, events, server = asyncio.run(converse(script, engine, until=lambda ev: kinds(ev).count("connected") >= 2))
    first = server.connections[0]
    assert first.closed_by_client
    # It waited for the answer, then moved before the deadline, keeping a margin (0.6 s).
    assert 2.0 < first.closed_at - sent[0] < 3.0


def test_repeated_go_away_meets_a_backoff(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup()
        await c.send({"sessionResumptionUpdate": {"newHandle": f"h{c.index}", "resumable": True}})
        await c.send({"goAway": {"timeLeft": "0s"}})
        await c.send({"goAway": {"timeLeft": "banana"}})
        await asyncio.sleep(30)

    conv, events, server = asyncio.run(converse(script, engine, duration=3.0))
    # 15 connections in 12 s before; with the backoff (0.25, 0.5, 1, 2 s ...) at most 5 in 3 s.
    assert 3 <= len(server.connections) <= 5
    delays = [e.data["delay_s"] for e in events if e.kind == "reconnecting"]
    assert delays == sorted(delays) and delays[-1] >= 1.0


def test_time_left_parsing():
    assert parse_time_left("9.5s") == 9.5
    assert parse_time_left("50s") == 50
    assert parse_time_left(" 3 ") == 3
    for nonsense in ("banana", "-5s", "", None, "nan", "infs", [], {}):
        assert parse_time_left(nonsense) == 0.0


def test_close_1008_after_go_away_without_resumption_is_explained(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup()
        await c.send({"goAway": {"timeLeft": "0.3s"}})
        await asyncio.sleep(0.3)
        await c.close(1008, "Connection aborted because the client failed to close the connection after "
                            "receiving a GoAway signal")

    with pytest.raises(LiveSessionError) as info:
        asyncio.run(converse(script, engine, LiveConfig(session_resumption=False)))
    message = str(info.value)
    assert info.value.code == 1008
    assert "goAway" in message and "session resumption is off" in message
    assert "check --model" not in message


# -- network bounds ------------------------------------------------------------------------


def test_no_setup_complete_is_an_error_within_the_connect_timeout(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup(reply=False)
        await asyncio.sleep(60)

    t0 = time.monotonic()
    with pytest.raises(LiveSessionError, match="no setupComplete within 1 s"):
        asyncio.run(converse(script, engine, LiveConfig(connect_timeout_s=1.0)))
    assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("freeze", [False, True])
def test_duration_is_honoured_while_waiting_for_setup(virtual_engine, freeze):
    engine = virtual_engine()

    async def script(c):
        if freeze:
            c.freeze()  # not even the closing handshake will be answered
        else:
            await c.accept_setup(reply=False)
        await asyncio.sleep(60)

    t0 = time.monotonic()
    conv, events, _ = asyncio.run(converse(script, engine, duration=0.5))
    assert time.monotonic() - t0 < 2.0
    assert kinds(events)[-1] == "closed"


def test_a_frozen_peer_is_detected_by_keepalive_and_ends_with_an_error(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        if c.index == 0:
            await c.accept_setup()
            await asyncio.sleep(0.3)
        c.freeze()  # later connections freeze before the setup
        await asyncio.sleep(60)

    config = LiveConfig(keepalive_interval_s=0.2, keepalive_timeout_s=0.6, connect_timeout_s=0.5, max_reconnects=2)
    t0 = time.monotonic()
    with pytest.raises(LiveSessionError) as info:
        asyncio.run(converse(script, engine, config, timeout=20))
    elapsed = time.monotonic() - t0
    assert elapsed < 6.0
    assert "setupComplete" in str(info.value) and "gave up after 2 reconnects" in str(info.value)


def test_stop_during_a_frozen_session_returns_within_a_second(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup()
        c.freeze()
        await asyncio.sleep(60)

    async def stop_soon(conv):
        await asyncio.sleep(0.5)
        stopped_at.append(time.monotonic())
        conv.stop()

    stopped_at: list[float] = []
    asyncio.run(converse(script, engine, during=stop_soon))
    assert time.monotonic() - stopped_at[0] < 1.5


def test_duration_is_honoured_with_a_session_frozen_mid_conversation(virtual_engine):
    # Frozen after the setup and an answer's first chunk, with the microphone streaming at
    # 20x real time into a socket nobody reads: the keepalive (35 s) has not fired yet, the
    # closing handshake will never be answered, and duration still ends it.
    engine = virtual_engine(speed=20.0)

    async def script(c):
        await c.accept_setup()
        await c.stream(tone_pcm(440, 0.2))
        c.freeze()
        await asyncio.sleep(60)

    t0 = time.monotonic()
    conv, events, _ = asyncio.run(converse(script, engine, duration=1.5))
    assert time.monotonic() - t0 < 4.0
    assert kinds(events)[-1] == "closed" and "error" not in kinds(events)
    assert conv.connections == 1


# -- text, mute, transcripts ---------------------------------------------------------------


def test_send_text_as_client_content_and_as_realtime_text(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup()
        await c.wait_for(lambda m: "client_content" in m)
        await c.wait_for(lambda m: (m.get("realtime_input") or {}).get("text") == "and a realtime line")
        await c.send({"serverContent": {"outputTranscription": {"text": "Hello!"}}})
        await c.stream(tone_pcm(440, 0.2))
        await c.send(flag("turnComplete"))
        await asyncio.sleep(30)

    async def type_lines(conv):
        await asyncio.sleep(0.2)
        conv.send_text("what time is it?")
        conv.send_text("and a realtime line", realtime=True)

    conv, events, server = asyncio.run(converse(script, engine, until=answered, during=type_lines))
    c = server.connections[0]
    content = c.messages("client_content")[0]
    assert content["turns"] == [{"parts": [{"text": "what time is it?"}], "role": "user"}]
    assert content["turnComplete"] is True
    assert [e.text for e in events if e.kind == "text_sent"] == ["what time is it?", "and a realtime line"]
    assert conv.transcript[:3] == [("user", "what time is it?"), ("user", "and a realtime line"), ("model", "Hello!")]


def test_mute_stops_the_audio_and_ends_the_stream_after_a_second(virtual_engine):
    engine = virtual_engine(input=duplex.Tone(440.0, 0.3))

    async def script(c):
        await c.accept_setup()
        await c.wait_for(lambda m: (m.get("realtime_input") or {}).get("audioStreamEnd"), timeout=10)
        await asyncio.sleep(30)

    muted_at: list[float] = []

    async def mute_soon(conv):
        await asyncio.sleep(0.5)
        muted_at.append(time.monotonic())
        conv.mute()

    conv, events, server = asyncio.run(converse(script, engine, during=mute_soon,
                                                until=lambda ev: "audio_stream_end" in kinds(ev)))
    c = server.connections[0]
    end_at = next(t for t, m in c.received if (m.get("realtime_input") or {}).get("audioStreamEnd"))
    audio_times = [t for t, m in c.received if "audio" in (m.get("realtime_input") or {})]
    assert 1.0 <= end_at - muted_at[0] < 3.0  # quiet for more than a second (slack for a loaded machine)
    # At most the chunk in hand at the mute went out after it, and nothing captured while muted.
    assert sum(t > muted_at[0] for t in audio_times) <= 1, "no audio while muted"
    assert conv.muted


def test_transcription_fragments_keep_finished_and_aggregate(virtual_engine):
    engine = virtual_engine()

    async def script(c):
        await c.accept_setup()
        for text, finished in ((" Hello", None), (" there,", None), (" friend.", True)):
            await c.send({"serverContent": {"inputTranscription": {"text": text, "finished": finished}}})
        await c.send({"serverContent": {"outputTranscription": {"text": "Hi"}}})
        await c.send(audio_message(tone_pcm(440, 0.1), outputTranscription={"text": " you", "finished": True}))
        await c.send({"serverContent": {"turnComplete": True}, "usageMetadata": {"totalTokenCount": 7}})
        await asyncio.sleep(30)

    conv, events, _ = asyncio.run(converse(script, engine, until=answered))
    inputs = [e for e in events if e.kind == "input_transcript"]
    assert [e.data["finished"] for e in inputs] == [False, False, True]
    assert inputs[-1].data["aggregate"] == " Hello there, friend."
    outputs = [e for e in events if e.kind == "output_transcript"]
    assert [e.data["finished"] for e in outputs] == [False, True]
    assert conv.transcript == [("user", "Hello there, friend."), ("model", "Hi you")]
    assert [e.data["total_tokens"] for e in events if e.kind == "usage"] == [7]

