"""Talking without headphones on a real sound server: PulseAudio's null sink is the speaker
and its monitor the microphone, so the microphone hears the model's voice at 0 dB (no
acoustic loss at all), through cpal, ALSA and the server's own buffering and clocks.

A question is played into the sink (``paplay``), duplex sends it to the emulator through
the real google-genai SDK, plays the spoken answer into the same sink and hears it back.
During the answer a second voice is played into the sink, as a user talking over the
model. With echo cancellation on, what duplex sends during the answer carries at least
25 dB less echo than it receives, the model never interrupts itself, and the second voice
still reaches the emulator loudly enough for its voice activity detector (a barge-in that
is not an echo). With cancellation off the same conversation interrupts itself.

About 12 s of real time per conversation.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav

import duplex
from duplex.demo import speak
from duplex.emulator import LiveEmulator
from duplex.emulator.echo import barge_ins
from duplex.emulator.scenarios import Scenario
from duplex.live import LiveConfig, LiveConversation
from device_helpers import SERVERS, null_sink_server
from test_sound_server import overloaded

pytestmark = pytest.mark.sound_server

#: A long answer (about 8 s), so the canceller has time to converge before it is measured.
ANSWER = ("The weather today is sunny with a light breeze from the west, and tomorrow brings "
          "clouds in the morning, some rain in the afternoon, and mild temperatures all weekend.")
#: The second voice starts this long after the answer's first audio left the emulator.
SECOND_VOICE_AT_S = 4.5
#: The echo is measured over this stretch of the answer (far end only, after convergence).
MEASURE_S = (2.0, 4.3)


@pytest.fixture(scope="module", params=tuple(SERVERS))
def sound_server(request):
    """A null sink as default sink and its monitor as default source: PulseAudio, then
    PipeWire with pipewire-pulse (what a desktop without headphones runs today)."""
    yield from null_sink_server(request.param)


@pytest.fixture(scope="module")
def emulator():
    scenario = Scenario(reply_template=ANSWER)
    with LiveEmulator(scenario=scenario).run_in_thread() as emu:
        yield emu


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> tuple[Path, Path]:
    """The question and the second voice as 16-bit WAVs for ``paplay``."""
    folder = tmp_path_factory.mktemp("voices")
    out = []
    for name, text, seed in (("question", "What is the weather like today?", 0),
                             ("barge_in", "Stop, wait a moment please.", 1)):
        audio, _ = speak(text, seed)
        pcm = np.clip(np.asarray(audio) * 32767, -32768, 32767).astype(np.int16)
        out.append(write_wav(folder / f"{name}.wav", pcm, 22_050))
    return out[0], out[1]


def _paplay(server, wav: Path) -> subprocess.Popen:
    return subprocess.Popen(["paplay", str(wav)], env={**os.environ, **server.env},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _pcm(chunks) -> np.ndarray:
    data = b"".join(c.pcm for c in chunks)
    return np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float64) / 32768


def _energy(x: np.ndarray) -> float:
    return float(np.mean(x ** 2)) if x.size else 0.0


def converse(server, emulator, voices, echo_cancellation: bool):
    """One conversation; returns (session, stats, second voice start time, echo reduction dB,
    glitches): what went wrong below duplex (device errors, a stalled capture) or in the
    pairing of capture and reference (realignments), which voids the echo figure."""
    question, barge_in = voices
    before = len(emulator.sessions)
    engine = duplex.AudioEngine(echo_cancellation=echo_cancellation)  # default devices: the null sink
    second: dict[str, float] = {}
    players: list[subprocess.Popen] = []
    done = threading.Event()

    def director():
        # Ask once the session is up, then talk over the answer SECOND_VOICE_AT_S into it.
        deadline = time.monotonic() + 20
        while len(emulator.sessions) <= before and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.05)
        time.sleep(0.5)
        players.append(_paplay(server, question))
        while time.monotonic() < deadline and not done.is_set():
            answers = emulator.sessions[-1].answers if len(emulator.sessions) > before else []
            voiced = [a for a in answers if a.first_audio_at is not None]
            if voiced:
                wait = voiced[0].first_audio_at + SECOND_VOICE_AT_S - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                second["at"] = time.monotonic()
                players.append(_paplay(server, barge_in))
                return
            time.sleep(0.02)

    async def main():
        async with engine:
            conv = LiveConversation(engine, emulator.make_client(), LiveConfig())
            await conv.run(duration=12.0)
            return engine.stats()

    thread = threading.Thread(target=director, daemon=True)
    thread.start()
    try:
        stats = asyncio.run(main())
    finally:
        done.set()
        thread.join(timeout=5)
        for p in players:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
    session = emulator.sessions[-1]
    voiced = [a for a in session.answers if a.first_audio_at is not None]
    if not voiced:  # the question was lost below duplex (a stalled capture on a loaded machine)
        return session, stats, second.get("at"), float("nan"), ["the question never got a spoken answer"]
    answer = voiced[0]
    t0 = answer.first_audio_at
    # What the microphone received: the answer as the emulator sent it (played at unity gain
    # into the sink, whose monitor is the microphone). What duplex sent back: the audio the
    # emulator received over the same stretch.
    sent = np.frombuffer(answer.pcm, "<i2").astype(np.float64) / 32768
    heard = sent[int(MEASURE_S[0] * 24_000) : int(MEASURE_S[1] * 24_000)]
    back = _pcm([c for c in session.audio_chunks if t0 + MEASURE_S[0] <= c.time <= t0 + MEASURE_S[1]])
    reduction = 10 * np.log10(_energy(heard) / max(_energy(back), 1e-12))
    levels = []
    for k in range(int(8 / 0.25)):
        x = _pcm([c for c in session.audio_chunks if t0 + 0.25 * k <= c.time < t0 + 0.25 * (k + 1)])
        levels.append(round(10 * np.log10(max(_energy(x), 1e-12)), 0))
    print(f"answer level {10 * np.log10(max(_energy(heard), 1e-12)):.1f} dBFS; sent back per 0.25 s from its "
          f"first audio (dBFS): {levels}")
    e = {k: v for k, v in stats.as_dict().items() if k.startswith("echo_")}
    print("echo stats", e, "device errors", stats.device_errors)
    glitches = []
    if stats.device_errors:
        glitches.append(f"{stats.device_errors} device errors ({stats.last_device_error})")
    if stats.echo_realignments:
        glitches.append(f"{stats.echo_realignments} realignments of capture and reference")
    arrivals = [c.time for c in session.audio_chunks if t0 <= c.time <= t0 + MEASURE_S[1]]
    gap = max(np.diff(arrivals), default=0.0)
    if gap > 0.25:
        glitches.append(f"capture stalled for {gap * 1000:.0f} ms during the answer")
    return session, stats, second.get("at"), float(reduction), glitches


TAKES = 3


def test_with_echo_cancellation_the_echo_is_25_db_down_and_a_second_voice_still_goes_out(
        sound_server, emulator, voices, record_property):
    """Takes are repeated (up to 3) while something voids the echo figure: a glitch below
    duplex, or the answer cut by its own echo before it was measured (AEC3 has not found
    the echo path in the first few hundred ms of the first answer, and at 0 dB the start of
    the echo is loud enough for the emulator's VAD)."""
    history = []
    for n in range(1, TAKES + 1):
        session, stats, second_at, reduction, glitches = converse(sound_server, emulator, voices, True)
        assert stats.echo_cancellation and stats.echo_frames > 0  # every take
        t0 = next((a.first_audio_at for a in session.answers if a.first_audio_at is not None), None)
        if t0 is None:
            history.append(f"take {n}: " + "; ".join(glitches))
            continue
        cuts = barge_ins(session)
        print(f"take {n}: echo reduction {reduction:.1f} dB; barge-ins",
              [(round(b.time - t0, 2), b.cause, round(b.similarity, 2), b.echo) for b in cuts], glitches)
        assert stats.echo_cancellation and stats.echo_frames > 0  # every take
        early = [b for b in cuts if t0 <= b.time < t0 + MEASURE_S[1] and (second_at is None or b.time < second_at)]
        if early:
            glitches = glitches + [f"the answer was cut {early[0].time - t0:.2f} s in by "
                                   f"{'its own echo' if early[0].echo else 'a barge-in'} before it was measured"]
        if not glitches:
            break
        history.append(f"take {n}: " + "; ".join(glitches))
    else:
        msg = f"no take without glitches or an early cut in {TAKES}:\n" + "\n".join(history)
        if overloaded():
            pytest.skip(f"machine overloaded (load {os.getloadavg()[0]:.1f}); {msg}")
        if all("own echo" in h for h in history):
            pytest.xfail(f"start-up echo leak at 0 dB echo (issue 8); {msg}")
        pytest.fail(msg)
    record_property("echo_reduction_db", round(reduction, 1))
    record_property("echo_takes", n)
    print(stats.summary())
    assert reduction >= 25, f"only {reduction:.1f} dB less echo went out"
    assert second_at is not None
    # The second voice talks over the answer: it reaches the emulator loudly enough for its VAD
    # (during double talk the heard audio also carries residual echo, so it is not judged by
    # its similarity with the answer).
    heard_user = [b for b in cuts if b.time >= second_at]
    assert heard_user, f"the second voice did not reach the emulator's VAD: {cuts}"
    late_echo = [b for b in cuts if b.echo and b.time < second_at]
    assert late_echo == [], "the model interrupted itself after the canceller had converged"


def test_without_echo_cancellation_the_model_interrupts_itself(sound_server, emulator, voices):
    for n in range(1, TAKES + 1):
        session, stats, _, reduction, glitches = converse(sound_server, emulator, voices, echo_cancellation=False)
        cuts = barge_ins(session)
        print(f"take {n}: echo reduction {reduction:.1f} dB; barge-ins",
              [(b.cause, round(b.similarity, 2), b.echo) for b in cuts], glitches)
        assert not stats.echo_cancellation
        if any(b.echo for b in cuts) or not any("never got a spoken answer" in g for g in glitches):
            break
    else:
        if overloaded():
            pytest.skip(f"machine overloaded (load {os.getloadavg()[0]:.1f}): the question never got an answer")
    assert sum(b.echo for b in cuts) >= 1, f"no self-interruption at 0 dB echo: {cuts}"
