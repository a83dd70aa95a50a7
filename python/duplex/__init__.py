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
:mod:`duplex.extras`     which optional extra (live, video, bench) a feature needs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._engine import __version__
from ._lazy import lazy_attributes

# Eager, and cheap (no numpy): the function `devices` must win over the submodule of the
# same name, which Python would otherwise bind here when anything imports it.
from .devices import DeviceInfo, Tone, VirtualDevice, devices
from .errors import (
    ArgumentTypeError,
    ChunkTooLargeError,
    DeviceError,
    DeviceLostError,
    DuplexError,
    EngineClosedError,
    EngineInternalError,
    InvalidInputError,
    PcmTypeError,
    PlaybackFullError,
    UnknownDeviceError,
    WavFormatError,
)

if TYPE_CHECKING:
    from .engine import CAPTURE_RATE_HZ, PLAY_RATE_HZ, AudioEngine, DeviceEvent, InterruptReport, Stats

# The engine module (numpy, asyncio) loads on first use (PEP 562), so the
# ``duplex`` command starts without them. ``__version__`` is the Cargo workspace version,
# compiled into the extension; maturin writes the same one into the package metadata.
_LAZY = {
    "CAPTURE_RATE_HZ": "engine", "PLAY_RATE_HZ": "engine", "AudioEngine": "engine",
    "InterruptReport": "engine", "Stats": "engine", "DeviceEvent": "engine",
}


__getattr__: Callable[[str], Any]
__dir__: Callable[[], list[str]]
__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)

__all__ = [
    "__version__",
    "ArgumentTypeError",
    "AudioEngine",
    "CAPTURE_RATE_HZ",
    "PLAY_RATE_HZ",
    "ChunkTooLargeError",
    "DeviceError",
    "DeviceEvent",
    "DeviceInfo",
    "DeviceLostError",
    "DuplexError",
    "EngineClosedError",
    "EngineInternalError",
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
