"""The null-sink sound servers that tests and benchmarks can start, by name.

Each gives PulseAudio clients a null sink ``nullsink`` whose monitor is the default source:
``"pulseaudio"`` (:mod:`duplex.testing.audio_server`) and ``"pipewire"`` (PipeWire with
pipewire-pulse, :mod:`duplex.testing.pipewire_server`).
"""

from __future__ import annotations

import os
from typing import Any, Callable, ContextManager, Dict, NamedTuple

from .audio_server import available, pulse_null_sink
from .pipewire_server import pipewire_available, pipewire_null_sink

__all__ = ["NullSinkServer", "SERVERS", "require"]


class NullSinkServer(NamedTuple):
    """How to describe, check for and start one kind of server."""

    description: str
    installed: Callable[[], bool]
    start: Callable[..., ContextManager[Any]]
    missing: str  # what to tell the user when it is not installed


SERVERS: Dict[str, NullSinkServer] = {
    "pulseaudio": NullSinkServer(
        "PulseAudio null sink 48 kHz stereo", available, pulse_null_sink,
        "PulseAudio is not installed; install it with: scripts/audio-server.sh install"),
    "pipewire": NullSinkServer(
        "PipeWire null sink 48 kHz stereo, served by pipewire-pulse", pipewire_available,
        pipewire_null_sink,
        "PipeWire is not installed; install it with: scripts/audio-server.sh install"),
}


def require(kind: str) -> NullSinkServer:
    """For tests: the server ``kind`` (a key of :data:`SERVERS`), or the test is skipped where
    it is not installed, and failed where ``CI`` is set (there it must be installed)."""
    import pytest  # only tests call this; the package does not depend on pytest

    server = SERVERS[kind]
    if not server.installed():
        if os.environ.get("CI"):
            pytest.fail(f"on CI: {server.missing}")
        pytest.skip(server.missing)
    return server
