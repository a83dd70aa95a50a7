"""Echo cancellation through the Python API on the virtual device's echo path."""

from __future__ import annotations

import numpy as np
import pytest

import duplex
from duplex import _engine
from duplex.demo import speak

DEVICE_HZ = 48_000


def echo_device(**kw) -> duplex.VirtualDevice:
    # A finite (silent) input: the as-fast-as-possible device waits for the reader.
    return duplex.VirtualDevice(input=np.zeros(16_000 * 8, np.float32), input_rate=16_000, speed=0,
                                loopback_delay_ms=40.0, loopback_gain=0.5, output="memory", **kw)


def test_defaults_off_on_the_virtual_device_and_switchable():
    engine = duplex.AudioEngine(backend=echo_device())
    assert engine.echo_cancellation is False
    engine.echo_cancellation = True
    assert engine.echo_cancellation is True
    with engine:
        engine.read(timeout=2)
        assert engine.stats().echo_cancellation
        engine.echo_cancellation = False
        assert not engine.stats().echo_cancellation
    assert "echo" in engine.stats().summary()
    with pytest.raises(ValueError, match="sonora"):
        duplex.AudioEngine(backend=echo_device(), echo_backend="speex")


def test_without_both_directions_there_is_nothing_to_cancel():
    engine = duplex.AudioEngine(backend=echo_device(), echo_cancellation=True)
    assert engine.echo_cancellation  # switched on; acts once both directions run
    with engine:
        engine.read(timeout=2)
        assert engine._native.echo_available


@pytest.mark.parametrize("backend", ["sonora", "aec3"])
def test_the_echo_of_the_answer_is_removed_from_the_chunks(backend):
    voice, _ = speak("The weather today is sunny with a light breeze from the west.", 0)
    answer = _engine.resample(np.asarray(voice, np.float32), 22_050, 24_000)
    answer = np.tile(answer, 3)[: 24_000 * 6] * 0.5
    pcm = np.clip(answer * 32767, -32768, 32767).astype(np.int16)
    engine = duplex.AudioEngine(backend=echo_device(), prebuffer_ms=60, capture_buffer_ms=100,
                                echo_cancellation=True, echo_backend=backend)
    with engine:
        engine.play(pcm)
        engine.end_turn()
        got = []
        while len(got) < 16_000 * 7:
            chunk = engine.read_array(timeout=10)
            assert chunk is not None
            got.extend(chunk.tolist())
        rec = engine.recording()[:, 0]
        stats = engine.stats()
    out = np.asarray(got, np.float32) / 32768
    # The echo each 16 kHz sample would carry: gain x what was played 40 ms before.
    delay = int(0.040 * DEVICE_HZ)
    idx = 3 * np.arange(out.size) - delay
    ok = (idx >= 0) & (idx < rec.size)
    echo = np.zeros_like(out)
    echo[ok] = 0.5 * rec[idx[ok]]
    start = int(np.argmax(np.abs(echo) > 1e-3)) + 2 * 16_000  # after 2 s of convergence
    end = start + 3 * 16_000
    reduction = 10 * np.log10(np.mean(echo[start:end] ** 2) / max(np.mean(out[start:end] ** 2), 1e-20))
    print(f"{backend}: {reduction:.1f} dB less echo; library ERLE {stats.echo_erle_db:.1f} dB, "
          f"delay {stats.echo_delay_ms:.0f} ms, {stats.echo_cost_mean_us:.0f} us per frame")
    assert reduction >= 30, f"{backend}: only {reduction:.1f} dB"
    assert stats.echo_backend == backend and stats.echo_frames > 500


def test_talk_cancels_echo_by_default_and_the_flag_turns_it_off(monkeypatch):
    from duplex import cli, talk

    made = []
    monkeypatch.setattr(talk, "AudioEngine", lambda *args, **kwargs: made.append(kwargs))
    for argv, expected in ((["talk"], True), (["talk", "--no-echo-cancellation"], False)):
        args = cli.build_parser().parse_args(argv)
        talk._make_engine(talk.TalkOptions(echo_cancellation=args.echo_cancellation))
        assert made[-1]["echo_cancellation"] is expected


def test_the_status_line_shows_the_canceller():
    import io

    from duplex.status import StatusLine

    out = io.StringIO()
    display = StatusLine(out)
    display.tty = True
    stats = duplex.AudioEngine(backend=echo_device()).stats().as_dict()
    display.status({**stats, "echo_cancellation": True, "echo_erle_db": 42.0}, "talking")
    assert "echo -42 dB" in out.getvalue()
    display.status({**stats, "echo_cancellation": False}, "talking")
    assert "echo off" in out.getvalue()
