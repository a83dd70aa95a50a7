"""Type stubs of the native module ``duplex._engine`` (see ``rust/python/src/``).

Use :class:`duplex.AudioEngine`; this module is its implementation. Checked against the
built module by ``python -m mypy.stubtest duplex._engine`` (in ``scripts/test.sh``).
"""

import os
from typing import Any, Literal, TypedDict, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ArgumentTypeError",
    "CAPTURE_RATE_HZ",
    "ChunkTooLargeError",
    "DEFAULT_LATENCY",
    "DEVICE_EVENT_FIELDS",
    "DEVICE_INFO_FIELDS",
    "DEVICE_PARAMS_FIELDS",
    "DeviceError",
    "DeviceLostError",
    "DuplexError",
    "Engine",
    "EngineClosedError",
    "EngineInternalError",
    "INTERRUPT_FIELDS",
    "InvalidInputError",
    "MAX_TIMEOUT_S",
    "PLAY_RATE_HZ",
    "PcmTypeError",
    "PlaybackFullError",
    "STATS_FIELDS",
    "UnknownDeviceError",
    "WavFormatError",
    "list_devices",
    "resample",
]

__version__: str
CAPTURE_RATE_HZ: int
PLAY_RATE_HZ: int
#: Longest timeout accepted, in seconds; ``None`` waits without a limit.
MAX_TIMEOUT_S: float
#: ``((name, type name), ...)`` of the engine's records, declared once in the engine crate.
STATS_FIELDS: tuple[tuple[str, str], ...]
INTERRUPT_FIELDS: tuple[tuple[str, str], ...]
DEVICE_INFO_FIELDS: tuple[tuple[str, str], ...]
DEVICE_PARAMS_FIELDS: tuple[tuple[str, str], ...]
DEVICE_EVENT_FIELDS: tuple[tuple[str, str], ...]
#: The device buffer asked for unless ``latency=`` says otherwise.
DEFAULT_LATENCY: Literal["low", "high"] | float

class DuplexError(Exception): ...
class InvalidInputError(DuplexError, ValueError): ...
class ArgumentTypeError(DuplexError, TypeError): ...
class PcmTypeError(DuplexError, TypeError): ...
class ChunkTooLargeError(DuplexError, ValueError): ...
class PlaybackFullError(DuplexError, TimeoutError): ...
class EngineClosedError(DuplexError, RuntimeError): ...
class EngineInternalError(DuplexError, RuntimeError): ...
class DeviceError(DuplexError, OSError): ...
class UnknownDeviceError(DeviceError, LookupError): ...
class DeviceLostError(DeviceError): ...
class WavFormatError(DuplexError, ValueError): ...

class _InterruptDict(TypedDict):
    heard_ms: float
    heard_frames: int
    received_ms: float
    discarded_ms: float

class _DeviceInfoDict(TypedDict):
    index: int
    id: str
    name: str
    host: str
    input_channels: int
    output_channels: int
    default_rate_hz: int
    is_default_input: bool
    is_default_output: bool

class _DeviceEventDict(TypedDict):
    kind: Literal["device_lost", "device_restored"]
    at_s: float
    message: str
    output_device: str
    input_device: str
    outage_ms: float
    attempts: int

_Pcm = bytes | bytearray | npt.NDArray[np.int16]
_Device = None | bool | int | str
_Timeout = float | None
#: What a virtual device's ``input`` option holds (see ``VirtualDevice.to_options``).
_VirtualInput = (
    tuple[Literal["silence"]]
    | tuple[Literal["tone"], float, float]
    | tuple[Literal["wav"], str | os.PathLike[str]]
    | tuple[Literal["samples"], npt.NDArray[np.float32], int]
)
_VirtualOption = int | float | bool | str | os.PathLike[str] | _VirtualInput | None

@final
class Engine:
    def __new__(
        cls,
        backend: Literal["cpal", "virtual"] | None = None,
        *,
        input_device: _Device = None,
        output_device: _Device = None,
        sample_rate: int | None = None,
        period_frames: int | None = None,
        latency: Literal["low", "high"] | float | None = None,
        realtime: bool | None = None,
        host: Literal["auto", "pulse", "alsa"] | None = None,
        chunk_ms: int | None = None,
        prebuffer_ms: int | None = None,
        playback_buffer_ms: int | None = None,
        capture_buffer_ms: int | None = None,
        fade_ms: float | None = None,
        virtual: dict[str, _VirtualOption] | None = None,
    ) -> Engine: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def chunk_frames(self) -> int: ...
    @property
    def overflowed(self) -> bool: ...
    def play(self, pcm: _Pcm, timeout: _Timeout = None) -> None: ...
    def end_turn(self, timeout: _Timeout = None) -> None: ...
    def drain(self, timeout: _Timeout = None) -> bool: ...
    def interrupt(self) -> _InterruptDict: ...
    def read(self, timeout: _Timeout = None) -> bytes | None: ...
    def read_array(self, timeout: _Timeout = None) -> npt.NDArray[np.int16] | None: ...
    def clear_capture(self) -> None: ...
    def next_device_event(self, timeout: _Timeout = None) -> _DeviceEventDict | None: ...
    # Typed by ``duplex.Stats``, which tests/test_binding_contract.py checks against STATS_FIELDS.
    def stats(self) -> dict[str, Any]: ...
    def recording(self) -> npt.NDArray[np.float32]: ...
    def device_params(self) -> dict[str, int]: ...
    def set_echo_cancellation(self, enabled: bool) -> None: ...
    @property
    def echo_cancellation(self) -> bool: ...
    @property
    def echo_available(self) -> bool: ...
    def set_echo_options(
        self, backend: str = "sonora", noise_suppression: bool = True, high_pass_filter: bool = True
    ) -> None: ...
    def echo_options(self) -> tuple[str, bool, bool]: ...

def list_devices() -> list[_DeviceInfoDict]: ...
def resample(
    samples: npt.NDArray[np.float32], from_hz: int, to_hz: int, *, low_latency: bool = False
) -> npt.NDArray[np.float32]: ...
def _panic_for_tests(message: str) -> None: ...
