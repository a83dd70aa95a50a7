"""Shared by the real-device test modules: null-sink server fixtures (PulseAudio, and PipeWire
through pipewire-pulse), a test tone and a bounded wait (one copy, not one per module)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import duplex
from duplex.testing.servers import SERVERS, require

PLAY_HZ = duplex.PLAY_RATE_HZ




def null_sink_server(kind: str):
    """Yields a fresh null-sink server of ``kind`` (a key of :data:`SERVERS`); skips where it is
    not installed (fails under CI, where it must be there)."""
    with require(kind).start() as srv:
        yield srv


@pytest.fixture
def server():
    """A fresh PulseAudio server with a null sink."""
    yield from null_sink_server("pulseaudio")


def tone(seconds: float, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    """A sine at the play rate as int16 PCM."""
    t = np.arange(round(seconds * PLAY_HZ)) / PLAY_HZ
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def wait_until(pred, timeout: float, what: str) -> None:
    """Polls ``pred`` until it holds; fails the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
