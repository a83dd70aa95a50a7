"""PCM helpers in one place: int16 <-> float conversion, downmix to mono, and whole-clip
resampling with the engine's own resampler (the one the device path uses, so a clip
resampled here sounds like the engine's output). Off the real-time path: these allocate.
"""

from __future__ import annotations

import numpy as np

from . import _engine

__all__ = ["to_float", "to_int16", "downmix", "resample", "resample_int16"]


def to_float(samples: np.ndarray | bytes) -> np.ndarray:
    """int16 samples (an array, or little-endian bytes) as float32 in [-1, 1)."""
    x = np.frombuffer(samples, dtype="<i2") if isinstance(samples, (bytes, bytearray, memoryview)) else samples
    return np.asarray(x, dtype=np.float32) / 32768.0


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as int16, rounded and clipped."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def downmix(interleaved: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved frames to mono: the mean of the channels (same dtype as the input)."""
    if channels == 1:
        return interleaved
    frames = np.asarray(interleaved).reshape(-1, channels)
    return frames.mean(axis=1).astype(frames.dtype)


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """A whole float32 mono clip at ``to_hz`` (the engine's resampler)."""
    if from_hz == to_hz:
        return np.asarray(x, dtype=np.float32)
    return np.asarray(_engine.resample(np.ascontiguousarray(x, dtype=np.float32), from_hz, to_hz), dtype=np.float32)


def resample_int16(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """A whole int16 mono clip at ``to_hz`` (the engine's resampler), as int16."""
    if from_hz == to_hz or samples.size == 0:
        return np.asarray(samples).astype(np.int16)
    return to_int16(resample(to_float(samples), from_hz, to_hz))
