"""Exceptions raised by duplex.

Every error derives from :class:`DuplexError`, and also from the built-in exception a
Python programmer would expect (``ValueError`` for bad arguments, ``TypeError`` for
arguments of the wrong type, ``TimeoutError`` for a full playback buffer, ``OSError`` for
devices, ``RuntimeError`` for a closed engine or an internal error), so ``except ValueError``
keeps working. Messages say what was wrong and what to do.

The classes are created by the native module (``duplex._engine``), so the engine raises
them directly; this module is their public home.

=======================  =========================  ======================================
class                    also a                     raised for
=======================  =========================  ======================================
DuplexError              Exception                  (base of all)
InvalidInputError        ValueError                 a value out of range, bad option, PCM
ArgumentTypeError        TypeError                  an argument of the wrong type
PcmTypeError             TypeError                  PCM that is not bytes or int16
ChunkTooLargeError       ValueError                 a chunk larger than the playback buffer
PlaybackFullError        TimeoutError               no room within the timeout
EngineClosedError        RuntimeError               a call on a stopped or closed engine
EngineInternalError      RuntimeError               a bug in duplex (a caught panic)
DeviceError              OSError                    a device that cannot be opened
UnknownDeviceError       DeviceError, LookupError   no such device
DeviceLostError          DeviceError                read()/play() while the device is gone
WavFormatError           ValueError                 a WAV file that cannot be used
=======================  =========================  ======================================
"""

from __future__ import annotations

from ._engine import (
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

__all__ = [
    "DuplexError",
    "InvalidInputError",
    "ArgumentTypeError",
    "PcmTypeError",
    "ChunkTooLargeError",
    "PlaybackFullError",
    "EngineClosedError",
    "EngineInternalError",
    "DeviceError",
    "UnknownDeviceError",
    "DeviceLostError",
    "WavFormatError",
]
