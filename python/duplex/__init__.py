"""duplex: a real-time, full-duplex audio engine for speech-to-speech models.

The device callbacks, the lock-free capture and playback rings and the resampling run in
Rust and never take the GIL; Python reads 16 kHz mic chunks, plays 24 kHz model audio and
flushes playback on barge-in in one atomic step.

API map
-------
:class:`AudioEngine`     the engine: ``read`` / ``chunks``, ``play`` / ``play_async``,
                         ``interrupt``, ``end_turn``, ``stats``
:func:`devices`          list the audio devices (and the virtual one)
:class:`VirtualDevice`   a clock-driven device for machines without a sound card
:class:`Tone`            a sine input for the virtual device
:mod:`duplex.errors`     the exceptions
"""

from __future__ import annotations

from .devices import DeviceInfo, Tone, VirtualDevice, devices
from .engine import CAPTURE_RATE_HZ, PLAY_RATE_HZ, AudioEngine, InterruptReport, Stats
from .errors import (
    ChunkTooLargeError,
    DeviceError,
    DuplexError,
    EngineClosedError,
    InvalidInputError,
    PcmTypeError,
    PlaybackFullError,
    UnknownDeviceError,
    WavFormatError,
)

__all__ = [
    "AudioEngine",
    "CAPTURE_RATE_HZ",
    "PLAY_RATE_HZ",
    "ChunkTooLargeError",
    "DeviceError",
    "DeviceInfo",
    "DuplexError",
    "EngineClosedError",
    "InterruptReport",
    "InvalidInputError",
    "PcmTypeError",
    "PlaybackFullError",
    "Stats",
    "Tone",
    "UnknownDeviceError",
    "VirtualDevice",
    "WavFormatError",
    "devices",
]
