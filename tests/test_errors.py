"""Bad input raises an exception that says what was wrong and what to do, and nothing
already buffered is lost or corrupted by it."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest
from conftest import dominant_freq, sine, to_i16

import duplex
from duplex import errors


@pytest.fixture
def engine(virtual_engine):
    return virtual_engine(speed=4, prebuffer_ms=50)


def played_after(engine: duplex.AudioEngine, seconds: float) -> np.ndarray:
    """Ends the turn, waits for it to play out and returns the non-silent recording."""
    engine.end_turn()
    deadline = time.monotonic() + 10
    while engine.stats().playback_buffered_ms > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(seconds)
    engine.stop()
    rec = engine.recording()[:, 0]
    loud = np.flatnonzero(np.abs(rec) > 1e-4)
    return rec[loud[0] : loud[-1] + 1]


BAD_PCM = [
    (b"\x00\x01\x02", errors.InvalidInputError, "odd number"),
    (np.zeros(10, dtype=np.float32), errors.PcmTypeError, r"got float32; .*\(x \* 32767\)"),
    (np.zeros(10, dtype=np.int32), errors.PcmTypeError, r"got int32; .*x\.astype\(numpy\.int16\)"),
    (np.zeros((10, 2), dtype=np.int16), errors.InvalidInputError, "1-D"),
    ("not audio", errors.PcmTypeError, "expected bytes"),
    ([1, 2, 3], errors.PcmTypeError, "expected bytes"),
]


@pytest.mark.parametrize(("pcm", "exc", "hint"), BAD_PCM)
def test_bad_pcm_is_refused_and_queued_audio_survives(engine, pcm, exc, hint):
    good = to_i16(sine(24_000, 500, 0.3))
    engine.play(good)
    with pytest.raises(exc, match=hint):
        engine.play(pcm)
    body = played_after(engine, 0.05)
    assert len(body) == pytest.approx(0.3 * 48_000, abs=60), "the good chunk played whole"
    assert dominant_freq(body, 48_000) == pytest.approx(500, abs=1)


def test_error_classes_are_also_builtin_exceptions():
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.PcmTypeError, TypeError)
    assert issubclass(errors.PlaybackFullError, TimeoutError)
    assert issubclass(errors.DeviceError, OSError)
    assert issubclass(errors.UnknownDeviceError, LookupError)
    assert all(
        issubclass(getattr(errors, name), errors.DuplexError)
        for name in errors.__all__
    )


def test_chunk_larger_than_the_ring_is_refused_and_nothing_is_lost(virtual_engine):
    engine = virtual_engine(speed=4, playback_buffer_ms=500, prebuffer_ms=50)
    good = to_i16(sine(24_000, 500, 0.2))
    engine.play(good)
    with pytest.raises(errors.ChunkTooLargeError, match="split it into smaller chunks"):
        engine.play(np.zeros(24_000, dtype=np.int16))  # 1 s into a 0.5 s buffer
    body = played_after(engine, 0.05)
    assert len(body) == pytest.approx(0.2 * 48_000, abs=60)


def test_full_playback_buffer_times_out_without_taking_anything(virtual_engine):
    engine = virtual_engine(speed=1, playback_buffer_ms=400, prebuffer_ms=300)
    chunk = to_i16(sine(24_000, 500, 0.15))
    engine.play(chunk)
    engine.play(chunk)  # 300 ms queued: the prebuffer is reached, playback starts
    started = time.monotonic()
    with pytest.raises(errors.PlaybackFullError, match="nothing was lost"):
        engine.play(to_i16(sine(24_000, 500, 0.35)), timeout=0.05)
    assert time.monotonic() - started < 1.0
    body = played_after(engine, 0.05)
    assert len(body) == pytest.approx(0.3 * 48_000, abs=60), "only the accepted audio played"


def test_negative_timeout_is_refused(engine):
    with pytest.raises(ValueError, match="timeout"):
        engine.read(timeout=-1)


def test_calls_on_a_stopped_or_closed_engine():
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice())
    for call in (lambda: engine.read(0.1), lambda: engine.play(b"\x00\x00"), engine.interrupt, engine.end_turn):
        with pytest.raises(errors.EngineClosedError, match=r"call start\(\) first"):
            call()
    engine.start()
    engine.stop()
    with pytest.raises(errors.EngineClosedError, match="not running"):
        engine.read(0.1)
    engine.close()
    with pytest.raises(errors.EngineClosedError, match="closed; create a new AudioEngine"):
        engine.start()
    with pytest.raises(errors.EngineClosedError):
        engine.play(b"\x00\x00")


def test_stop_while_reading_in_another_thread_raises_closed():
    import threading

    engine = duplex.AudioEngine(backend=duplex.VirtualDevice()).start()
    result: list[BaseException] = []

    def reader() -> None:
        try:
            while True:
                engine.read(timeout=None)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            result.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    engine.close()
    t.join(timeout=5)
    assert not t.is_alive()
    assert isinstance(result[0], errors.EngineClosedError)


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"sample_rate": 1_000}, "8000..=384000"),
        ({"period_frames": 4}, "period of 4 frames"),
        ({"period_frames": 100_000}, "period of 100000 frames"),
        ({"channels": 0}, "channels must be 1..=32"),
        ({"speed": -1.0}, "speed"),
        ({"input": duplex.Tone(30_000, 0.5)}, "half the sample rate"),
    ],
)
def test_unsupported_virtual_device_settings(kwargs, hint):
    with pytest.raises(errors.InvalidInputError, match=hint):
        duplex.AudioEngine(backend=duplex.VirtualDevice(**kwargs))


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"chunk_ms": 5}, "chunk_ms must be 10..=1000"),
        ({"prebuffer_ms": 20_000}, "prebuffer_ms"),
        ({"playback_buffer_ms": 10}, "playback_buffer_ms"),
        ({"fade_ms": 0}, "fade_ms"),
    ],
)
def test_unsupported_engine_settings(kwargs, hint):
    with pytest.raises(errors.InvalidInputError, match=hint):
        duplex.AudioEngine(backend=duplex.VirtualDevice(), **kwargs)


def test_unknown_backend():
    with pytest.raises(ValueError, match="'cpal', 'virtual'"):
        duplex.AudioEngine(backend="jack")


def test_wav_of_the_wrong_format(tmp_path):
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(16_000)
        w.writeframes(bytes(1_600))
    with pytest.raises(errors.WavFormatError, match="8-bit.*convert it to 16-bit"):
        duplex.AudioEngine(backend=duplex.VirtualDevice(input=eight_bit))
    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("hello")
    with pytest.raises(errors.WavFormatError, match="notes.txt"):
        duplex.AudioEngine(backend=duplex.VirtualDevice(input=not_wav))
    with pytest.raises(errors.WavFormatError, match="missing.wav"):
        duplex.AudioEngine(backend=duplex.VirtualDevice(input=tmp_path / "missing.wav"))


def test_bad_virtual_input_array():
    with pytest.raises(ValueError, match="1-D"):
        duplex.AudioEngine(backend=duplex.VirtualDevice(input=np.zeros((4, 2))))
    with pytest.raises(TypeError, match="float or int16"):
        duplex.AudioEngine(backend=duplex.VirtualDevice(input=np.zeros(4, dtype=np.int64)))


def test_unwritable_output_wav(tmp_path):
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(output=tmp_path / "no" / "such" / "dir.wav"))
    with pytest.raises(errors.WavFormatError, match="folder exists"):
        engine.start()
    engine.close()


def test_unknown_device_index_or_name():
    with pytest.raises(errors.UnknownDeviceError, match="duplex.devices()"):
        duplex.AudioEngine(input_device=10_000)
    with pytest.raises(errors.UnknownDeviceError, match="no audio device named 'no-such-mic'"):
        duplex.AudioEngine(input_device="no-such-mic", output_device=False)
