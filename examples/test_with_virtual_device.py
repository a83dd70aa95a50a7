"""The virtual device in your own tests: a clock-driven sound card with a WAV, an array or a
tone as the microphone and a WAV or memory as the speaker, faster than real time.

    pytest examples/test_with_virtual_device.py

Needs only the core install: pip install duplex-engine pytest
"""

from __future__ import annotations

import wave

import numpy as np

import duplex


def test_the_microphone_comes_out_as_16_khz_chunks() -> None:
    device = duplex.VirtualDevice(input=duplex.Tone(440.0, 0.5), speed=10.0)  # 10x real time
    with duplex.AudioEngine(backend=device) as engine:
        chunks = [engine.read(timeout=2.0) for _ in range(25)]  # 0.5 s of audio
    pcm = np.frombuffer(b"".join(chunks[5:]), dtype="<i2").astype(np.float64)
    assert all(len(c) == 640 for c in chunks)  # 20 ms of 16 kHz s16le each
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) * 16_000 / len(pcm) - 440.0) < 5.0  # the tone, at 16 kHz


def test_what_the_model_says_is_what_the_speaker_plays(tmp_path) -> None:
    answer = (8000 * np.sin(2 * np.pi * 300 * np.arange(24_000) / 24_000)).astype(np.int16)  # 1 s
    out = tmp_path / "speaker.wav"
    with duplex.AudioEngine(backend=duplex.VirtualDevice(output=out, speed=10.0), prebuffer_ms=0) as engine:
        engine.play(answer)
        engine.end_turn()
        while engine.stats().frames_played < engine.stats().output_rate_hz:  # until 1 s has played
            engine.read(timeout=1.0)
    with wave.open(str(out)) as w:
        played = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.abs(played).max() > 7000  # the answer, at about its level, reached the speaker


def test_barge_in_reports_how_much_was_heard() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=10.0), prebuffer_ms=0) as engine:
        engine.play(np.zeros(24_000 * 5, dtype=np.int16))  # a 5 s answer
        while engine.stats().frames_played < engine.stats().output_rate_hz // 2:
            engine.read(timeout=1.0)
        report = engine.interrupt()
    assert 400 < report.heard_ms < 5000 and report.discarded_ms > 0
