"""Exceptions raised by duplex.

Every error derives from :class:`DuplexError`, and also from the built-in exception a
Python programmer would expect (``ValueError`` for bad arguments, ``TimeoutError`` for a
full playback buffer, ``OSError`` for devices), so ``except ValueError`` keeps working.
Messages say what was wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "DuplexError",
    "InvalidInputError",
    "PcmTypeError",
    "ChunkTooLargeError",
    "PlaybackFullError",
    "EngineClosedError",
    "DeviceError",
    "UnknownDeviceError",
    "WavFormatError",
]


class DuplexError(Exception):
    """Base class of every error duplex raises on purpose."""


class InvalidInputError(DuplexError, ValueError):
    """An argument the engine cannot use (a bad rate, period, option or PCM buffer)."""


class PcmTypeError(DuplexError, TypeError):
    """PCM of the wrong type: not bytes or a 1-D ``numpy.int16`` array."""


class ChunkTooLargeError(DuplexError, ValueError):
    """A playback chunk larger than the playback buffer could ever hold."""


class PlaybackFullError(DuplexError, TimeoutError):
    """The playback buffer stayed full for the whole timeout; nothing of the chunk was queued."""


class EngineClosedError(DuplexError, RuntimeError):
    """A call on an engine that is stopped or closed."""


class DeviceError(DuplexError, OSError):
    """A device that cannot be opened or configured (no sound card, no sound server, busy)."""


class UnknownDeviceError(DeviceError, LookupError):
    """No device matches the name or index given."""


class WavFormatError(DuplexError, ValueError):
    """A WAV file that is missing, damaged, or in a format the virtual device cannot use."""
