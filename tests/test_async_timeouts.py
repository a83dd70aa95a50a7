"""The asyncio calls read their timeouts exactly as the blocking ones (which the binding
checks): the same classes, the same messages, and the same message when the buffer stays
full."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from conftest import sine, to_i16

from duplex._timeouts import describe_s, timeout_s
from duplex.errors import ArgumentTypeError, InvalidInputError, PlaybackFullError

BAD = [
    ("1", ArgumentTypeError),
    (b"1", ArgumentTypeError),
    (True, ArgumentTypeError),
    ([1], ArgumentTypeError),
    (object(), ArgumentTypeError),
    (float("nan"), InvalidInputError),
    (-1, InvalidInputError),
    (-0.001, InvalidInputError),
    (math.inf, InvalidInputError),
    (1e10, InvalidInputError),
    (10**30, InvalidInputError),
    (10**400, InvalidInputError),
    (np.float64("nan"), InvalidInputError),
    ("x" * 200, ArgumentTypeError),
]
GOOD = [None, 0, 0.0, 2, 1.5, 1e9, np.float32(0.5), np.int64(3), Decimal("0.25"), Fraction(1, 4)]


def _message(call) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        call()
    return info.type, str(info.value)


@pytest.mark.parametrize(("timeout", "kind"), BAD, ids=[repr(b[0])[:20] for b in BAD])
def test_async_calls_refuse_a_bad_timeout_as_the_blocking_ones_do(virtual_engine, timeout, kind):
    engine = virtual_engine()
    pcm = to_i16(sine(24_000, 440.0, 0.02, 0.5))
    for sync, coro in (
        (lambda: engine.read(timeout), lambda: engine.read_async(timeout)),
        (lambda: engine.play(pcm, timeout), lambda: engine.play_async(pcm, timeout)),
        (lambda: engine.end_turn(timeout), lambda: engine.end_turn_async(timeout)),
    ):
        expected = _message(sync)
        assert expected[0] is kind
        assert _message(lambda: asyncio.run(coro())) == expected
        assert "timeout must be None" in expected[1]


@pytest.mark.parametrize("timeout", GOOD, ids=[repr(g)[:20] for g in GOOD])
def test_what_the_binding_takes_is_taken(timeout):
    seconds = timeout_s(timeout)
    assert seconds is None if timeout is None else seconds == float(timeout)


def test_play_async_says_how_long_it_waited_in_the_blocking_calls_words(virtual_engine):
    engine = virtual_engine(prebuffer_ms=0, playback_buffer_ms=300)
    tone = to_i16(sine(24_000, 440.0, 0.28, 0.5))
    engine.play(tone)
    # A virtual device that renders in real time cannot free 280 ms of room in 50 ms.
    sync = _message(lambda: engine.play(tone, 0.05))
    assert sync[0] is PlaybackFullError

    got = _message(lambda: asyncio.run(engine.play_async(tone, np.float32(0.05))))
    assert got == sync
    assert "(50 ms)" in got[1]


def test_durations_are_described_as_the_engine_describes_them():
    assert describe_s(0.05) == "50 ms"
    assert describe_s(2.5) == "2.500 s"
    assert describe_s(1e9) == "1.000e9 s"
