"""The binding contract: the typed Python records agree with the engine's field lists.

The field lists of Stats, InterruptReport, DeviceInfo and the device parameters are declared
once, in the engine crate (``rust/engine/src/fields.rs``), and converted generically by the
bindings. These tests fail when the Python classes (and their docs) drift from them.
"""

from __future__ import annotations

import dataclasses

import pytest

import duplex
from duplex import _engine
from duplex.devices import DeviceInfo
from duplex.engine import DeviceEvent, InterruptReport, Stats


#: Literal aliases of the typed records, and the engine kind their values have.
_LITERALS = {"DeviceEventKind": "str"}


def _declared(cls: type) -> list[tuple[str, str]]:
    # Annotations are strings here (``from __future__ import annotations``).
    return [(f.name, _LITERALS.get(str(f.type), str(f.type))) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(
    ("cls", "engine_fields"),
    [
        (Stats, _engine.STATS_FIELDS),
        (InterruptReport, _engine.INTERRUPT_FIELDS),
        (DeviceInfo, _engine.DEVICE_INFO_FIELDS),
        (DeviceEvent, _engine.DEVICE_EVENT_FIELDS),
    ],
    ids=["Stats", "InterruptReport", "DeviceInfo", "DeviceEvent"],
)
def test_python_record_matches_engine_field_list(cls: type, engine_fields: tuple[tuple[str, str], ...]) -> None:
    assert _declared(cls) == list(engine_fields)


def test_stats_and_reports_come_back_with_engine_types() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0)) as engine:
        assert engine.read(timeout=2.0) is not None
        engine.play(b"\x00\x01" * 2400)
        report = engine.interrupt()
        stats = engine.stats()
        params = engine.device_params
    for record, fields in ((stats, _engine.STATS_FIELDS), (report, _engine.INTERRUPT_FIELDS)):
        for name, kind in fields:
            value = getattr(record, name)
            assert type(value).__name__ == kind, (name, value)
    assert isinstance(report.heard_frames, int)
    assert list(params) == [name for name, _ in _engine.DEVICE_PARAMS_FIELDS]
    assert params["output_rate_hz"] == 48_000 and params["period_frames"] == 480


def test_device_listing_converts_generically() -> None:
    for info in duplex.devices():
        for name, kind in _engine.DEVICE_INFO_FIELDS:
            assert type(getattr(info, name)).__name__ == kind


# -- exception classes: created by the binding, re-exported by duplex.errors -------------

import pickle  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from duplex import errors  # noqa: E402

BUILTIN_BASE = {
    "InvalidInputError": ValueError,
    "ArgumentTypeError": TypeError,
    "PcmTypeError": TypeError,
    "ChunkTooLargeError": ValueError,
    "PlaybackFullError": TimeoutError,
    "EngineClosedError": RuntimeError,
    "EngineInternalError": RuntimeError,
    "DeviceError": OSError,
    "UnknownDeviceError": LookupError,
    "DeviceLostError": OSError,
    "WavFormatError": ValueError,
}


@pytest.mark.parametrize("name", errors.__all__)
def test_error_classes_come_from_the_binding_with_builtin_bases(name: str) -> None:
    cls = getattr(errors, name)
    assert cls is getattr(_engine, name), "duplex.errors re-exports the binding's class"
    assert cls.__module__ == "duplex.errors" and cls.__doc__
    assert issubclass(cls, errors.DuplexError)
    if name != "DuplexError":
        assert issubclass(cls, BUILTIN_BASE[name])
    exc = pickle.loads(pickle.dumps(cls("what went wrong")))
    assert type(exc) is cls and str(exc) == "what went wrong"


def test_engine_errors_are_raised_as_those_classes() -> None:
    with pytest.raises(errors.UnknownDeviceError) as info:
        duplex.AudioEngine(input_device="no-such-mic", output_device=False)
    assert isinstance(info.value, OSError) and isinstance(info.value, LookupError)


def test_a_panic_becomes_engine_internal_error_never_panic_exception() -> None:
    try:
        _engine._panic_for_tests("boom at the binding")
    except Exception as exc:  # PanicException is a BaseException: `except Exception` misses it
        caught = exc
    assert type(caught) is errors.EngineInternalError
    assert isinstance(caught, RuntimeError)
    assert "boom at the binding" in str(caught) and "please report" in str(caught)


# -- timeouts -----------------------------------------------------------------------------

BAD_TIMEOUTS = [
    (-1, errors.InvalidInputError),
    (1e19, errors.InvalidInputError),
    (1e300, errors.InvalidInputError),
    (float("inf"), errors.InvalidInputError),
    (float("nan"), errors.InvalidInputError),
    (10**400, errors.InvalidInputError),
    (True, errors.ArgumentTypeError),
    ("1", errors.ArgumentTypeError),
]


@pytest.mark.parametrize(("timeout", "exc"), BAD_TIMEOUTS, ids=[repr(t)[:12] for t, _ in BAD_TIMEOUTS])
def test_bad_timeouts_are_refused_clearly_on_every_waiting_call(timeout: object, exc: type) -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0)) as engine:
        calls = {
            "read": lambda: engine.read(timeout),  # type: ignore[arg-type]
            "read_array": lambda: engine.read_array(timeout),  # type: ignore[arg-type]
            "play": lambda: engine.play(b"\x00\x00" * 240, timeout),  # type: ignore[arg-type]
            "end_turn": lambda: engine.end_turn(timeout),  # type: ignore[arg-type]
            "drain": lambda: engine.drain(timeout),  # type: ignore[arg-type]
        }
        for name, call in calls.items():
            with pytest.raises(exc) as info:
                call()
            msg = str(info.value)
            assert "timeout must be None" in msg and "1e9" in msg, (name, msg)
            assert len(msg) < 300 and "0000000000" not in msg, (name, msg)
        assert engine.stats().playback_buffered_ms == 0, "nothing was queued by a refused call"


def test_largest_timeout_is_accepted() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0)) as engine:
        assert engine.read(timeout=_engine.MAX_TIMEOUT_S) is not None
        engine.play(b"\x00\x00" * 240, timeout=_engine.MAX_TIMEOUT_S)


def test_play_timeout_message_reports_the_callers_timeout() -> None:
    # A slow clock (a 10 ms period takes 100 ms): a blocked play() releases the prebuffer,
    # so the turn starts, but 0.4 s plays only 40 ms, far from the 240 ms of room needed.
    engine = duplex.AudioEngine(
        backend=duplex.VirtualDevice(speed=0.1), playback_buffer_ms=400, prebuffer_ms=300
    ).start()
    try:
        engine.play(np.zeros(7200, dtype=np.int16))  # 300 ms: the ring is nearly full
        started = time.monotonic()
        with pytest.raises(errors.PlaybackFullError) as info:
            engine.play(np.zeros(8400, dtype=np.int16), timeout=0.4)  # 350 ms never fits in time
        assert time.monotonic() - started >= 0.39
        assert "(400 ms)" in str(info.value), str(info.value)
    finally:
        engine.close()


def test_ctrl_c_ends_a_wait_without_a_limit() -> None:
    # The child restores Python's SIGINT handler itself: a shell that starts a job in the
    # background (as CI harnesses do) sets SIGINT to SIG_IGN, the child inherits that, and
    # Python then installs no KeyboardInterrupt handler at all, so the wait would be right to
    # ignore the signal.
    code = (
        "import duplex, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "e = duplex.AudioEngine(backend=duplex.VirtualDevice(), playback_buffer_ms=2000).start()\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    while True: e.play(b'\\0\\0' * 24000, timeout=None)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # well into a wait: the 2 s buffer is full after two chunks
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert "interrupted" in out


# -- what sounddevice users reach for: drain(), an overflow flag, devices(kind=...) ---------


def test_drain_plays_everything_queued_then_returns() -> None:
    engine = duplex.AudioEngine(backend=duplex.VirtualDevice(speed=4), prebuffer_ms=500).start()
    try:
        tone = (np.sin(np.arange(4800) * 2 * np.pi * 500 / 24_000) * 10_000).astype(np.int16)
        engine.play(tone)  # 200 ms: short of the prebuffer, so it would wait without end_turn
        assert engine.drain(timeout=0) is False, "nothing has played yet"
        assert engine.drain(timeout=10) is True
        stats = engine.stats()
        assert stats.playback_buffered_ms == 0
        engine.stop()
        loud = np.flatnonzero(np.abs(engine.recording()[:, 0]) > 1e-3)
        assert (loud[-1] - loud[0]) / 48_000 == pytest.approx(0.2, abs=0.005)
    finally:
        engine.close()


def test_overflowed_says_whether_audio_was_dropped_before_the_last_chunk() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=1), capture_buffer_ms=100) as engine:
        for _ in range(3):
            assert engine.read(timeout=2) is not None
            assert engine.overflowed is False
        time.sleep(0.4)  # 400 ms of capture into a 100 ms buffer
        assert engine.read(timeout=2) is not None
        assert engine.overflowed is True
        assert engine.stats().capture_overflows >= 1
        assert engine.read(timeout=2) is not None  # buffered, right behind: nothing dropped
        assert engine.overflowed is False


def test_devices_by_kind() -> None:
    every = duplex.devices()
    inputs = duplex.devices(kind="input")
    outputs = duplex.devices(kind="output")
    assert all(d.input_channels > 0 for d in inputs) and all(d.output_channels > 0 for d in outputs)
    assert {d.id for d in inputs} | {d.id for d in outputs} <= {d.id for d in every}
    assert inputs[-1].id == outputs[-1].id == "virtual"
    with pytest.raises(errors.InvalidInputError, match="'input', 'output' or None"):
        duplex.devices(kind="mic")  # type: ignore[arg-type]


# -- latency, realtime and the device figures ----------------------------------------------


def test_device_event_kinds_are_the_literal_ones() -> None:
    import typing

    from duplex.engine import DeviceEventKind

    assert set(typing.get_args(DeviceEventKind)) == {"device_lost", "device_restored"}


def test_the_default_latency_is_the_engines() -> None:
    import inspect

    assert _engine.DEFAULT_LATENCY == "high"
    default = inspect.signature(duplex.AudioEngine).parameters["latency"].default
    assert default == _engine.DEFAULT_LATENCY


BAD_LATENCIES = [
    ("medium", errors.InvalidInputError, "'low'"),
    ("80", errors.InvalidInputError, "not a string"),
    (0.08, errors.InvalidInputError, "looks like seconds"),
    (3, errors.InvalidInputError, "4..=1000"),
    (1001, errors.InvalidInputError, "4..=1000"),
    (float("nan"), errors.InvalidInputError, "finite"),
    (True, errors.ArgumentTypeError, "bool"),
    ([80], errors.ArgumentTypeError, "latency"),
]


@pytest.mark.parametrize(("latency", "exc", "says"), BAD_LATENCIES, ids=[repr(b[0]) for b in BAD_LATENCIES])
def test_bad_latency_is_refused_naming_the_argument(latency: object, exc: type, says: str) -> None:
    with pytest.raises(exc) as info:
        duplex.AudioEngine(input_device="no-such-mic", output_device=False, latency=latency)  # type: ignore[arg-type]
    assert "latency" in str(info.value) and says in str(info.value), str(info.value)


def test_realtime_must_be_a_flag() -> None:
    with pytest.raises(errors.ArgumentTypeError, match="realtime must be True or False"):
        duplex.AudioEngine(input_device="no-such-mic", output_device=False, realtime="yes")  # type: ignore[arg-type]


def test_virtual_device_figures_say_virtual_and_show_the_jitter_buffer() -> None:
    with duplex.AudioEngine(backend=duplex.VirtualDevice(speed=0), prebuffer_ms=150) as engine:
        assert engine.read(timeout=2.0) is not None
        stats = engine.stats()
        assert engine.next_device_event(timeout=0) is None
    assert stats.device_state == "virtual"
    assert stats.output_period_frames == stats.input_period_frames == 480
    assert stats.output_thread == "virtual clock"
    assert stats.output_device_underruns == stats.input_device_overruns == 0
    assert stats.jitter_buffer_ms == pytest.approx(150.0)
    assert "device underruns" in stats.summary()
