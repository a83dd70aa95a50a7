"""Property-based tests of the Python API (hypothesis): generated arguments for
AudioEngine, VirtualDevice, play, read, end_turn and their timeouts, and arrays of any
dtype, shape, stride and value (NaN and inf included).

The only outcomes allowed are success or a typed ``duplex.errors.DuplexError``: never a
PanicException, never another raw exception, never a call that outlives its bound, and a
refused call never changes what was queued before it.

Examples per test: ``DUPLEX_HYPOTHESIS_EXAMPLES`` (default 25, about a minute in all); e.g.
``DUPLEX_HYPOTHESIS_EXAMPLES=2000 .venv/bin/python -m pytest tests/test_hypothesis_api.py``.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import duplex
from duplex import errors

EXAMPLES = int(os.environ.get("DUPLEX_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # the machine is shared; hangs are caught by explicit bounds below
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,  # no .hypothesis folder in the tree
)
#: Longest any call may take when its timeout (or the data at hand) says it returns at once.
BOUND_S = 2.0

# Numbers the way users get them wrong: any size, either sign, NaN and inf, and other types.
ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 15, 16, 4096, 4097, 2**31, 2**32, 2**63, 2**64]),
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-9, 1e19, 1e300, -1.0, 0.5, 2.5]),
)
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.just([1, 2]), st.just(b"\x00"))
numbers = st.one_of(ints, floats, junk)
timeouts = st.one_of(st.none(), floats, ints, junk)


def allowed(call):
    """Runs ``call``; returns (ok, result). Any exception but a DuplexError fails the test."""
    try:
        return True, call()
    except errors.DuplexError as e:
        assert str(e), "an error without a message"
        return False, e
    except BaseException as e:  # noqa: BLE001 - PanicException derives from BaseException
        pytest.fail(f"raw {type(e).__module__}.{type(e).__name__}: {e}")


def timed(call, bound=BOUND_S):
    t = time.monotonic()
    result = allowed(call)
    took = time.monotonic() - t
    assert took < bound, f"took {took:.2f} s (bound {bound} s)"
    return result


def small_timeout(t) -> bool:
    """A timeout after which a call must have returned within BOUND_S."""
    return isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t < 0.3


@SETTINGS
@given(
    chunk_ms=st.one_of(st.just(20), numbers),
    prebuffer_ms=st.one_of(st.just(200), numbers),
    playback_buffer_ms=st.one_of(st.just(120_000), numbers),
    capture_buffer_ms=st.one_of(st.just(2_000), numbers),
    fade_ms=st.one_of(st.just(5.0), numbers),
    sample_rate=st.one_of(st.none(), numbers),
    period_frames=st.one_of(st.none(), numbers),
)
def test_audio_engine_arguments(**kwargs):
    ok, engine = timed(lambda: duplex.AudioEngine(backend="virtual", **kwargs))
    if ok:
        with engine:
            timed(lambda: engine.read(timeout=0.2))
            timed(engine.interrupt)


VIRTUAL_FIELDS = {
    "sample_rate": numbers,
    "channels": numbers,
    "period_frames": numbers,
    "input_loop": st.one_of(st.booleans(), junk),
    "loopback_delay_ms": st.one_of(st.none(), numbers),
    "loopback_gain": numbers,
    "speed": st.one_of(st.just(0.0), st.just(8.0), numbers),
    "clock_skew_ppm": numbers,
    "stall_every_periods": numbers,
    "stall_ms": numbers,
    "input_rate": st.one_of(st.none(), numbers),
}
inputs = st.one_of(
    st.none(),
    st.builds(duplex.Tone, floats, floats),
    st.text(max_size=8),
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.int32, np.uint8, np.complex64, bool]),
        shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=300),
        elements=None,
    ),
)


@SETTINGS
@given(fields=st.fixed_dictionaries({}, optional=VIRTUAL_FIELDS), source=inputs)
def test_virtual_device_arguments(fields, source):
    ok, engine = timed(lambda: duplex.AudioEngine(backend=duplex.VirtualDevice(input=source, output=None, **fields)))
    if not ok:
        return
    ok, _ = timed(engine.start)
    if ok:
        timed(lambda: engine.read(timeout=0.1))
        timed(lambda: engine.play(b"\x00\x01" * 480, timeout=0.1))
        timed(lambda: engine.end_turn(timeout=0.1))
        timed(engine.stats)
    # Whatever the clock, stall or speed: close() is prompt (the goal is 100 ms).
    timed(engine.close, bound=1.0)


pcm_arrays = hnp.arrays(
    dtype=st.one_of(hnp.scalar_dtypes(), st.just(np.dtype(np.int16)), st.just(np.dtype(">i2"))),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=64),
)
pcm_values = st.one_of(
    pcm_arrays,
    # Strided and non-contiguous int16 views.
    st.tuples(hnp.arrays(np.int16, st.integers(0, 4_000)), st.integers(1, 5)).map(lambda t: t[0][:: t[1]]),
    st.tuples(hnp.arrays(np.int16, st.tuples(st.integers(0, 200), st.integers(1, 3))), st.integers(0, 2)).map(
        lambda t: t[0][:, min(t[1], t[0].shape[1] - 1)]
    ),
    st.binary(max_size=9_000),
    st.builds(bytearray, st.binary(max_size=100)),
    st.builds(memoryview, st.binary(max_size=100)),
    junk,
    floats,
)


def frozen_engine() -> duplex.AudioEngine:
    """An engine whose clock barely moves (a 10 ms period takes 10 s at speed 0.001), so
    what is queued changes only by what the test itself does."""
    device = duplex.VirtualDevice(speed=0.001, output=None)
    engine = duplex.AudioEngine(backend=device, playback_buffer_ms=1_000, prebuffer_ms=50).start()
    # The device thread runs its first period as soon as it starts, which on a loaded
    # machine can be after the test's first snapshot; wait for it, the next is 10 s away.
    while engine.stats().output_callbacks < 1:
        time.sleep(0.001)
    return engine


@SETTINGS
@given(pcm=pcm_values, timeout=timeouts, queued_frames=st.integers(0, 12_000))
def test_play_any_array_or_buffer(pcm, timeout, queued_frames):
    # Up to 500 ms queued first, in a 1 s ring: every chunk that can fit at all fits now
    # (the largest generated valid chunk is 187 ms), so play() returns at once.
    with frozen_engine() as engine:
        engine.play(np.full(queued_frames, 1_000, np.int16))
        before = engine.stats()
        ok, _ = timed(lambda: engine.play(pcm, timeout=timeout))
        after = engine.stats()
        if not ok:
            assert after.playback_buffered_ms == before.playback_buffered_ms, "a refused play() changed the queue"
            assert after.turn_received_ms == before.turn_received_ms


@SETTINGS
@given(timeout=timeouts, stalled=st.booleans())
def test_read_and_end_turn_timeouts(timeout, stalled):
    # Stalled: no chunk ever comes, so only a small timeout may be given. Otherwise chunks
    # are ready at once and any timeout returns promptly.
    assume(not stalled or small_timeout(timeout) or not isinstance(timeout, (int, float)) or timeout is None)
    if stalled and timeout is None:
        return
    device = duplex.VirtualDevice(speed=0.001 if stalled else 0.0, output=None)
    with duplex.AudioEngine(backend=device) as engine:
        ok, chunk = timed(lambda: engine.read(timeout=timeout))
        if ok and chunk is not None:
            assert isinstance(chunk, bytes) and len(chunk) == 640
        ok, arr = timed(lambda: engine.read_array(timeout=timeout))
        if ok and arr is not None:
            assert arr.dtype == np.int16 and arr.shape == (320,)
        timed(lambda: engine.end_turn(timeout=timeout))
