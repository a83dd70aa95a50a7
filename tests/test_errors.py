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
        ({"period_frames": 4}, r"period_frames must be .* 16\.\.=4096, got 4"),
        ({"period_frames": 100_000}, r"period_frames must be .* 16\.\.=4096, got 100000"),
        ({"channels": 0}, r"channels must be .* 1\.\.=32, got 0"),
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
        ({"chunk_ms": 5}, r"chunk_ms must be .* 10\.\.=1000, got 5"),
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


# -- arguments are read strictly where they enter, naming the argument and its range ------

BAD_ENGINE_ARGS = [
    ({"chunk_ms": -5}, errors.InvalidInputError, r"chunk_ms must be a whole number of milliseconds in 10\.\.=1000, got -5"),
    ({"prebuffer_ms": -1}, errors.InvalidInputError, r"prebuffer_ms .* 0\.\.=10000, got -1"),
    ({"playback_buffer_ms": 2**40}, errors.InvalidInputError, r"playback_buffer_ms .* 100\.\.=3600000"),
    ({"capture_buffer_ms": 10**100}, errors.InvalidInputError, r"capture_buffer_ms .*, got 100\.\.\. \(an int of 101 digits\)"),
    ({"chunk_ms": 20.0}, errors.ArgumentTypeError, r"chunk_ms must be a whole number .* got 20\.0 \(float\); pass an int"),
    ({"chunk_ms": True}, errors.ArgumentTypeError, r"chunk_ms .* got True \(bool\)"),
    ({"chunk_ms": "20"}, errors.ArgumentTypeError, r"chunk_ms .* got '20' \(str\)"),
    ({"fade_ms": float("nan")}, errors.InvalidInputError, r"fade_ms must be a finite number"),
    ({"fade_ms": "5"}, errors.ArgumentTypeError, r"fade_ms must be a number"),
]


@pytest.mark.parametrize(("kwargs", "exc", "hint"), BAD_ENGINE_ARGS)
def test_engine_arguments_name_themselves_and_their_range(kwargs, exc, hint):
    with pytest.raises(exc, match=hint) as info:
        duplex.AudioEngine(backend=duplex.VirtualDevice(), **kwargs)
    assert len(str(info.value)) < 300, "a huge number does not flood the message"


BAD_CPAL_ARGS = [
    ({"sample_rate": -1}, errors.InvalidInputError, r"sample_rate .* 8000\.\.=384000, got -1"),
    ({"sample_rate": 7}, errors.InvalidInputError, r"sample_rate .* 8000\.\.=384000, got 7"),
    ({"period_frames": 2.5}, errors.ArgumentTypeError, r"period_frames .* got 2\.5 \(float\)"),
    ({"period_frames": 0}, errors.InvalidInputError, r"period_frames .* 16\.\.=4096, got 0"),
    ({"input_device": True}, errors.ArgumentTypeError, r"input_device=True is not a device"),
    ({"output_device": -3}, errors.InvalidInputError, r"output_device index must be >= 0, got -3"),
    ({"input_device": 1.0}, errors.ArgumentTypeError, r"input_device takes None .* got 1\.0"),
]


@pytest.mark.parametrize(("kwargs", "exc", "hint"), BAD_CPAL_ARGS)
def test_real_device_arguments_are_checked_before_any_device_is_touched(kwargs, exc, hint):
    with pytest.raises(exc, match=hint):
        duplex.AudioEngine(**kwargs)


BAD_VIRTUAL_OPTIONS = [
    ({"period_frames": 2.5}, errors.ArgumentTypeError, r"period_frames .* got 2\.5 \(float\)"),
    ({"sample_rate": -48_000}, errors.InvalidInputError, r"sample_rate .* got -48000"),
    ({"input_loop": "no"}, errors.ArgumentTypeError, r"input_loop must be True or False, got 'no'"),
    ({"input_loop": 1}, errors.ArgumentTypeError, r"input_loop must be True or False, got 1"),
    ({"loopback_gain": float("nan")}, errors.InvalidInputError, r"loopback_gain must be a finite number"),
    ({"clock_skew_ppm": float("nan")}, errors.InvalidInputError, r"clock_skew_ppm must be a finite"),
    ({"stall_ms": float("inf")}, errors.InvalidInputError, r"stall_ms must be a finite number"),
    ({"loopback_delay_ms": float("inf")}, errors.InvalidInputError, r"loopback_delay_ms must be a finite"),
    ({"stall_every_periods": -1}, errors.InvalidInputError, r"stall_every_periods .* got -1"),
    ({"input": duplex.Tone(float("nan"), 0.5)}, errors.InvalidInputError, r"Tone\.freq_hz must be a finite"),
    ({"input": duplex.Tone(440, "loud")}, errors.ArgumentTypeError, r"Tone\.amplitude must be a number"),
    ({"input": np.zeros(480, np.float32), "input_rate": 0}, errors.InvalidInputError, r"input_rate .* got 0"),
]


@pytest.mark.parametrize(("kwargs", "exc", "hint"), BAD_VIRTUAL_OPTIONS)
def test_virtual_device_options_are_not_reinterpreted(kwargs, exc, hint):
    with pytest.raises(exc, match=hint):
        duplex.AudioEngine(backend=duplex.VirtualDevice(**kwargs))


def test_unknown_or_misspelt_virtual_options_raise():
    with pytest.raises(errors.InvalidInputError, match=r"unknown virtual device option 'perod_frames'; the options are sample_rate, .*period_frames"):
        duplex._engine.Engine("virtual", virtual={"perod_frames": 480})
    with pytest.raises(errors.InvalidInputError, match=r"virtual input spec must be"):
        duplex._engine.Engine("virtual", virtual={"input": ("tone", 440.0)})
    device = duplex.VirtualDevice()
    with pytest.raises(AttributeError):
        device.perod_frames = 480  # type: ignore[attr-defined]


def test_resample_rates_are_checked():
    with pytest.raises(errors.InvalidInputError, match=r"from_hz .* got -16000"):
        duplex._engine.resample(np.zeros(10, np.float32), -16_000, 24_000)


def test_unknown_backend_names_the_choices():
    with pytest.raises(errors.InvalidInputError, match="unknown backend 'virtaul'; use 'cpal' .* or 'virtual'"):
        duplex._engine.Engine("virtaul")  # type: ignore[arg-type]
