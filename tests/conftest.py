"""Shared fixtures: signals, WAV helpers and virtual engines."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

import duplex


def sine(rate: int, freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """A float64 sine."""
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def to_i16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] to int16."""
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """Writes int16 samples (interleaved if channels > 1) as a 16-bit WAV."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """Reads a 16-bit WAV as float32 (frames, channels), rate, channels."""
    with wave.open(str(path), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, channels).astype(np.float32) / 32768.0, rate, channels


def dominant_freq(x: np.ndarray, rate: int) -> float:
    """Frequency of the largest FFT peak, refined by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:]) + 1)
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * rate / len(x)


def sine_fit_residual(x: np.ndarray, rate: int, freq: float) -> float:
    """Largest deviation of `x` from the best-fitting sine at `freq` (any phase and level):
    a constant sub-sample delay does not count, a glitch or a chunk seam does."""
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    return float(np.max(np.abs(x - basis @ coef)))


def rms(x: np.ndarray) -> float:
    """Root mean square."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


@pytest.fixture
def tmp_wav(tmp_path: Path):
    """Factory writing a WAV into the test's temp folder."""

    def make(name: str, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
        return write_wav(tmp_path / name, samples, rate, channels)

    return make


@pytest.fixture
def virtual_engine():
    """Factory for started virtual engines, closed after the test."""
    engines: list[duplex.AudioEngine] = []

    def make(**kwargs) -> duplex.AudioEngine:
        engine_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in {
            "chunk_ms", "prebuffer_ms", "playback_buffer_ms", "capture_buffer_ms", "fade_ms"}}
        engine = duplex.AudioEngine(backend=duplex.VirtualDevice(**kwargs), **engine_kwargs)
        engines.append(engine)
        return engine.start()

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(scope="module")
def emulator():
    """The local Live API emulator on a thread, one per test module."""
    from duplex.emulator import LiveEmulator

    with LiveEmulator().run_in_thread() as emu:
        yield emu
