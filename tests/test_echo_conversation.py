"""Talking without headphones: whole conversations through the real SDK and the emulator on
a virtual device whose microphone hears its own speaker (-6 dB after 40 ms).

The emulator's voice activity detector takes any energy for speech, as the service's does,
so without echo cancellation the model's answer comes back and interrupts itself; the
emulator tells which ``interrupted`` were its own echo (:mod:`duplex.emulator.echo`).
With cancellation there must be none, while a user who talks over the model is still
heard and the answer flushed.

Real time: each conversation is about 24 s (the emulator paces its answers like the service).
``DUPLEX_ECHO_LONG=1`` makes it the issue's 60 s conversation of several turns (about 65 s
each): the first two questions come back four times before the story and the barge-in.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav

import duplex
from duplex.demo import speak
from duplex.emulator.echo import barge_ins
from duplex.live import LiveConfig, LiveConversation

RATE = 22_050


@pytest.fixture(scope="module")
def mic(tmp_path_factory) -> Path:
    """Three questions with room for the answers, then a fourth that talks over the third
    answer (a barge-in), then room for its answer."""
    phrases = [speak(text, i)[0] for i, text in enumerate(
        ["What is the weather like today?", "And tomorrow?", "Tell me a story.", "Stop, wait a moment."])]
    gap = lambda s: np.zeros(int(s * RATE), np.float32)  # noqa: E731
    rounds = 4 if os.environ.get("DUPLEX_ECHO_LONG") else 1  # on demand: the 60 s conversation
    audio = np.concatenate([gap(0.3), *[x for _ in range(rounds) for x in (phrases[0], gap(5.0), phrases[1], gap(5.0))],
                            phrases[2], gap(1.6), phrases[3], gap(5.0)])
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    return write_wav(tmp_path_factory.mktemp("echo") / "mic.wav", pcm, RATE)


def talk(emulator, mic: Path, echo_cancellation: bool):
    """One conversation; returns (session record, engine stats, events)."""
    device = duplex.VirtualDevice(input=mic, loopback_delay_ms=40.0, loopback_gain=0.5)
    engine = duplex.AudioEngine(backend=device, prebuffer_ms=100, echo_cancellation=echo_cancellation)
    events = []

    async def main():
        async with engine:
            conv = LiveConversation(engine, emulator.make_client(), LiveConfig())

            async def watch():
                async for ev in conv.events():
                    events.append(ev)

            watcher = asyncio.create_task(watch())
            await conv.run(duration=_length_s(mic) + 3.0)
            watcher.cancel()
            return engine.stats()

    stats = asyncio.run(main())
    return emulator.sessions[-1], stats, events


def _length_s(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_with_echo_cancellation_the_model_never_interrupts_itself_but_the_user_still_can(emulator, mic):
    session, stats, events = talk(emulator, mic, echo_cancellation=True)
    cuts = barge_ins(session)
    print("barge-ins:", [(b.turn_index, b.cause, round(b.similarity, 2), b.echo) for b in cuts])
    print(stats.summary())
    assert stats.echo_cancellation and stats.echo_frames > 0
    assert [b for b in cuts if b.echo] == [], "the model interrupted itself"
    # The fourth phrase talks over the third answer: heard, interrupted and flushed.
    user = [b for b in cuts if not b.echo]
    assert len(user) >= 1, f"the barge-in was not detected: {cuts}"
    assert stats.flushes >= 1
    assert any(e.kind == "interrupted" for e in events)
    assert len(session.answers) >= 4, [a.reply_text for a in session.answers]


def test_without_echo_cancellation_the_same_conversation_interrupts_itself(emulator, mic):
    session, stats, _ = talk(emulator, mic, echo_cancellation=False)
    cuts = barge_ins(session)
    print("barge-ins:", [(b.turn_index, b.cause, round(b.similarity, 2), b.echo) for b in cuts])
    assert not stats.echo_cancellation
    assert sum(b.echo for b in cuts) >= 1, f"no self-interruption without cancellation: {cuts}"
