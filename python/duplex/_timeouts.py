"""Timeouts of the asyncio calls, read exactly as the binding reads those of the blocking
ones (``rust/python/src/args.rs`` ``timeout_from``, ``rust/engine/src/wait.rs``), so that
``read_async(nan)`` fails like ``read(nan)``, with the same class and the same words.
The asyncio calls wait on the event loop, so the check has to happen here, in Python.
"""

from __future__ import annotations

import math

from .errors import ArgumentTypeError, InvalidInputError

__all__ = ["MAX_TIMEOUT_S", "timeout_s", "describe_s", "playback_full_message"]

#: Longest timeout accepted, in seconds (the binding's ``MAX_TIMEOUT_S``).
MAX_TIMEOUT_S = 1e9
#: Rust writes 1e9 as ``1e9``.
_RANGE = "timeout must be None (wait as long as it takes) or a number of seconds in 0..=1e9"


def _show(obj: object) -> str:
    """``repr()`` of an argument cut short, as the binding's ``show`` does."""
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        text = "<unprintable>"
    if isinstance(obj, int) and len(text) > 15:
        return f"{text[:3]}... (an int of {len(text.lstrip('-'))} digits)"
    return text if len(text) <= 60 else text[:57] + "..."


def _seconds(obj: object) -> float | None:
    """The number a timeout stands for, or ``None`` for a value of the wrong type: what
    PyO3's ``f64`` extraction takes (``__float__`` or ``__index__``), never a string."""
    if isinstance(obj, bool):
        return None
    if isinstance(obj, int):
        try:
            return float(obj)
        except OverflowError:  # too large for a float: simply out of range
            return math.inf
    if not (isinstance(obj, float) or hasattr(type(obj), "__float__") or hasattr(type(obj), "__index__")):
        return None
    try:
        return float(obj)  # type: ignore[arg-type]  # checked above: it converts itself
    except (TypeError, ValueError, OverflowError):
        return None


def timeout_s(timeout: object) -> float | None:
    """``timeout`` in seconds: ``None`` (no limit) or a number in ``0..=1e9``. Raises
    :class:`~duplex.errors.ArgumentTypeError` for a value of the wrong type (``"1"``,
    ``True``) and :class:`~duplex.errors.InvalidInputError` for one out of range (``-1``,
    ``nan``, ``inf``), naming the argument and what it takes."""
    if timeout is None:
        return None
    seconds = _seconds(timeout)
    if seconds is None:
        raise ArgumentTypeError(f"{_RANGE}, got {_show(timeout)} ({type(timeout).__name__})")
    if not 0.0 <= seconds <= MAX_TIMEOUT_S:
        raise InvalidInputError(f"{_RANGE}, got {_show(timeout)}; pass None to wait without a limit")
    return seconds


def describe_s(seconds: float) -> str:
    """A duration for a message: milliseconds below a second, else seconds, never hundreds
    of digits (the engine's ``wait::describe``)."""
    if seconds < 1.0:
        return f"{seconds * 1000.0:.0f} ms"
    if seconds < 1e6:
        return f"{seconds:.3f} s"
    mantissa, exponent = f"{seconds:.3e}".split("e")
    return f"{mantissa}e{int(exponent)} s"  # Rust's {:.3e}: 1.000e6, not 1.000e+06


def playback_full_message(seconds: float | None, what: str) -> str:
    """The message of a wait for playback room that ran out of ``seconds``; ``what`` says
    what was not queued (the engine's ``wait::playback_full``)."""
    return (
        f"the playback buffer stayed full for the whole timeout ({describe_s(seconds or 0.0)}); {what}. "
        "Wait for playback to catch up, pass a longer timeout (or None), or raise playback_buffer_ms"
    )
