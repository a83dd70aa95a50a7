"""Listing audio devices, and the virtual device used where there is no sound card."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from . import _engine
from .errors import ArgumentTypeError, InvalidInputError

__all__ = ["DeviceInfo", "Tone", "VirtualDevice", "devices"]


@dataclass(frozen=True)
class DeviceInfo:
    """One audio device as :func:`devices` reports it.

    ``index`` and ``name`` (or ``id``) are what :class:`duplex.AudioEngine` accepts as
    ``input_device`` / ``output_device``.
    """

    index: int
    id: str
    name: str
    host: str
    input_channels: int
    output_channels: int
    default_rate_hz: int
    is_default_input: bool
    is_default_output: bool

    @property
    def direction(self) -> str:
        """``"duplex"``, ``"input"``, ``"output"`` or ``"unavailable"`` (listed, cannot open)."""
        if self.input_channels and self.output_channels:
            return "duplex"
        if self.input_channels:
            return "input"
        if self.output_channels:
            return "output"
        return "unavailable"

    def __str__(self) -> str:
        default = ", ".join(
            d
            for d, flag in (("default in", self.is_default_input), ("default out", self.is_default_output))
            if flag
        )
        rate = f"{self.default_rate_hz} Hz" if self.default_rate_hz else "-"
        return (
            f"{self.index:>3}  {self.id:<28} {self.direction:<11} "
            f"in {self.input_channels:>2} / out {self.output_channels:>2}  {rate:>9}  {default}"
        )


VIRTUAL_DEVICE = DeviceInfo(
    index=-1,
    id="virtual",
    name="duplex virtual device (clock-driven, no sound card needed)",
    host="virtual",
    input_channels=1,
    output_channels=1,
    default_rate_hz=48_000,
    is_default_input=False,
    is_default_output=False,
)


def devices(kind: Literal["input", "output"] | None = None) -> list[DeviceInfo]:
    """Lists the audio devices of the default host, then duplex's virtual device.

    ``kind="input"`` keeps only devices with input channels, ``kind="output"`` only those
    with output channels (as ``sounddevice.query_devices(kind=...)`` narrows its list).

    Works with or without a sound server: with none, ALSA still lists the PCMs it is
    configured with (``null``, ``default``, ...), and those that cannot be opened show as
    ``unavailable``. The virtual device is always last, with index ``-1``.
    """
    if kind not in (None, "input", "output"):
        raise InvalidInputError(
            f"devices(kind=...) takes 'input', 'output' or None (every device), got {kind!r}"
        )
    found = [DeviceInfo(**d) for d in _engine.list_devices()]
    every = [*found, VIRTUAL_DEVICE]
    if kind == "input":
        return [d for d in every if d.input_channels > 0]
    if kind == "output":
        return [d for d in every if d.output_channels > 0]
    return every


@dataclass(frozen=True)
class Tone:
    """A sine input for the virtual device."""

    freq_hz: float = 440.0
    amplitude: float = 0.5




@dataclass(slots=True)
class VirtualDevice:
    """A clock-driven device for machines without a sound card, and for tests.

    Parameters
    ----------
    sample_rate, channels, period_frames
        The device format: the engine converts from and to it as for a real device.
    input
        ``None`` (silence), a WAV file path (any rate and channel count; 16/24/32-bit PCM or
        32-bit float), a :class:`Tone`, or a 1-D numpy array (float in [-1, 1] or int16) at
        ``input_rate``.
    input_rate
        Sample rate of an array ``input`` (default: ``sample_rate``).
    input_loop
        Repeat a finite input instead of going silent at its end.
    loopback_delay_ms, loopback_gain
        An echo path: the device's output is added to its input after this delay (at least
        one period), scaled by the gain.
    output
        ``"memory"`` (read it with :meth:`AudioEngine.recording`), a WAV path (16-bit, at the
        device rate and channel count), or ``None`` to discard.
    speed
        1.0 runs at real-time pace, 10.0 ten times faster, 0 as fast as the reader takes the
        audio: with a WAV or array input it waits for the reader, so no input is lost; with
        silence or a tone it waits once something has read.
    clock_skew_ppm, stall_every_periods, stall_ms
        Simulated clock error, and a deadline missed by ``stall_ms`` every N periods.
    """

    sample_rate: int = 48_000
    channels: int = 1
    period_frames: int = 480
    input: Any = None
    input_rate: int | None = None
    input_loop: bool = False
    loopback_delay_ms: float | None = None
    loopback_gain: float = 1.0
    output: Any = "memory"
    speed: float = 1.0
    clock_skew_ppm: float = 0.0
    stall_every_periods: int = 0
    stall_ms: float = 0.0

    def _input_spec(self) -> tuple[Any, ...] | None:
        source = self.input
        if source is None or (isinstance(source, str) and source == "silence"):
            return None
        if isinstance(source, Tone):
            return ("tone", source.freq_hz, source.amplitude)
        import numpy as np  # here, not at the top: `duplex devices` starts without numpy

        if isinstance(source, np.ndarray):
            if source.ndim != 1:
                raise InvalidInputError(
                    f"a virtual input array must be 1-D (mono), got shape {source.shape}"
                )
            if source.dtype == np.int16:
                samples = source.astype(np.float32) / 32768.0
            elif np.issubdtype(source.dtype, np.floating):
                samples = source.astype(np.float32)
            else:
                raise ArgumentTypeError(
                    f"a virtual input array must be float or int16, got dtype {source.dtype}"
                )
            rate = self.sample_rate if self.input_rate is None else self.input_rate
            return ("samples", np.ascontiguousarray(samples), rate)
        if isinstance(source, (str, os.PathLike)):
            return ("wav", os.fspath(source))
        raise ArgumentTypeError(
            "virtual input must be None, a WAV path, a duplex.Tone or a numpy array, "
            f"got {type(source).__name__}"
        )

    def to_options(self) -> dict[str, Any]:
        """The options dict the native engine takes.

        Values pass through unconverted: the engine reads them strictly, so ``2.5`` frames,
        ``input_loop="no"`` or a NaN gain raise a clear error instead of being reinterpreted.
        """
        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "period_frames": self.period_frames,
            "input": self._input_spec(),
            "input_loop": self.input_loop,
            "loopback_delay_ms": self.loopback_delay_ms,
            "loopback_gain": self.loopback_gain,
            "output": self.output,
            "speed": self.speed,
            "clock_skew_ppm": self.clock_skew_ppm,
            "stall_every_periods": self.stall_every_periods,
            "stall_ms": self.stall_ms,
        }


def _matching_virtual(device: VirtualDevice, **asked: int | None) -> VirtualDevice:
    """``device``, after checking that ``sample_rate``/``period_frames`` given to
    :class:`~duplex.AudioEngine` agree with it (they used to be ignored silently)."""
    for name, value in asked.items():
        own = getattr(device, name)
        if value is not None and value != own:
            raise InvalidInputError(
                f"AudioEngine({name}={value!r}) conflicts with the VirtualDevice's {name}={own!r}; "
                f"set {name} on the VirtualDevice (or leave it unset on AudioEngine)"
            )
    return device


def _virtual_for_engine(
    backend: object,
    input_device: object,
    output_device: object,
    sample_rate: int | None,
    period_frames: int | None,
) -> VirtualDevice | None:
    """The virtual device an ``AudioEngine(...)`` call asks for, or ``None`` for real devices
    (``backend="cpal"``); a bad ``backend`` or a format that conflicts with the given
    :class:`VirtualDevice` raises :class:`~duplex.errors.InvalidInputError`."""
    if input_device == "virtual" or output_device == "virtual":
        backend = "virtual"
    if isinstance(backend, VirtualDevice):
        return _matching_virtual(backend, sample_rate=sample_rate, period_frames=period_frames)
    if backend == "virtual":
        # The virtual device has no other device to ask: these settings are its format.
        return VirtualDevice(
            **{k: v for k, v in (("sample_rate", sample_rate), ("period_frames", period_frames)) if v is not None}
        )
    if backend == "cpal":
        return None
    raise InvalidInputError(
        f"backend must be 'cpal', 'virtual' or a duplex.VirtualDevice, got {backend!r}"
    )
