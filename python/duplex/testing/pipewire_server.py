"""Headless PipeWire null sink, served to PulseAudio clients by ``pipewire-pulse``.

The PipeWire counterpart of :mod:`duplex.testing.audio_server`: a PipeWire daemon with
WirePlumber and ``pipewire-pulse``, each in its own session, in a temporary
``XDG_RUNTIME_DIR`` / ``XDG_CONFIG_HOME`` / ``XDG_STATE_HOME`` so nothing of the user's is
read or written. A ``support.null-audio-sink`` node ``nullsink`` (48 kHz stereo) is the
default sink and its monitor the default source, as on the PulseAudio server, so the same
tests and benchmarks (``pacat`` recorders, the engine's native PulseAudio host, ALSA's
``pulse`` plugin) run on it unchanged through ``PULSE_SERVER``. This is what a desktop with
PipeWire offers PulseAudio clients; the graph keeps PipeWire's default quantum rules
(power-of-two quanta, clients ask for their latency), so the figures are a desktop's, not a
tuned test rig's.

Standard library only, like ``audio_server``. Needs Debian's ``pipewire``,
``pipewire-pulse`` and ``wireplumber`` (they install next to PulseAudio; only
``pipewire-alsa`` conflicts with it) and ``pactl``/``pacat`` from ``pulseaudio-utils``::

    with pipewire_null_sink() as srv:
        subprocess.run(["pacat", ...], env=srv.env)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Iterator

from .audio_server import SINK, PulseServer, _wait_for, serving

__all__ = ["pipewire_available", "pipewire_null_sink", "start_pipewire_null_sink", "PipeWireServer"]

_DAEMONS = ("pipewire", "wireplumber", "pipewire-pulse")

# The null sink, created by the daemon itself (no module to load); object.linger keeps it
# when the client that made it (none here) goes away.
_NULL_SINK_CONF = """context.objects = [
  { factory = adapter
    args = {
      factory.name     = support.null-audio-sink
      node.name        = %(sink)s
      node.description = NullSink
      media.class      = Audio/Sink
      audio.position   = [ FL FR ]
      audio.rate       = %(rate)d
      object.linger    = true
    }
  }
]
"""

# WirePlumber 0.4 exits at once without a D-Bus session bus unless device reservation and
# the flatpak portal are off; the file must sort before 90-enable-all.lua to take effect.
_WIREPLUMBER_LUA = """alsa_monitor.properties["alsa.reserve"] = false
default_access.properties["enable-flatpak-portal"] = false
"""


def pipewire_available() -> bool:
    """True if PipeWire, WirePlumber, pipewire-pulse and the pactl/pacat clients are installed."""
    return all(shutil.which(b) for b in (*_DAEMONS, "pactl", "pacat"))


class PipeWireServer(PulseServer):
    """A running PipeWire null-sink server (from :func:`start_pipewire_null_sink`).

    Answers the same calls as :class:`~duplex.testing.audio_server.PulseServer` (``env``,
    ``pactl``, ``sink_latency_us``, ``kill``/``restart``, ``stop``); ``pid`` is the
    pipewire daemon's. ``add_sink`` is PulseAudio's module-null-sink, which pipewire-pulse
    also implements.
    """

    @property
    def log_path(self) -> str:
        """The three daemons' log, in the order they started."""
        return os.path.join(self.dir, "pipewire.log")

    def daemon_pid(self, name: str) -> int:
        """The process id of one of the daemons: ``"pipewire"``, ``"wireplumber"`` or
        ``"pipewire-pulse"`` (for tests that stop one with SIGSTOP)."""
        for proc in self._procs:
            if proc.args[0] == name and proc.poll() is None:
                return proc.pid
        raise LookupError(f"{name} is not running on this server (one of {', '.join(_DAEMONS)})")

    def restart(self) -> None:
        """Starts the daemons again on the same runtime dir, after :meth:`kill`."""
        self.kill()
        try:
            _launch_pipewire(self)
        except BaseException:
            self.kill()
            raise


def start_pipewire_null_sink(rate: int = 48000, channels: int = 2, timeout: float = 15.0) -> PipeWireServer:
    """Starts PipeWire, WirePlumber and pipewire-pulse with a null sink; returns once
    PulseAudio clients see ``nullsink`` as the default sink (about 1 s). Stop it with
    :meth:`PipeWireServer.stop`; on failure everything started is stopped again."""
    if not pipewire_available():
        raise RuntimeError("pipewire, wireplumber, pipewire-pulse or pactl/pacat not installed: "
                           "apt-get install pipewire pipewire-pulse wireplumber pulseaudio-utils")
    if channels != 2:
        raise ValueError("the PipeWire null sink is stereo (audio.position FL FR)")
    tmp = tempfile.mkdtemp(prefix="duplex-pipewire.")
    for sub in ("run", "config/pipewire/pipewire.conf.d", "config/wireplumber/main.lua.d", "state"):
        os.makedirs(os.path.join(tmp, sub), mode=0o700)
    with open(os.path.join(tmp, "config/pipewire/pipewire.conf.d/50-duplex-nullsink.conf"), "w") as f:
        f.write(_NULL_SINK_CONF % {"sink": SINK, "rate": rate})
    with open(os.path.join(tmp, "config/wireplumber/main.lua.d/80-duplex-headless.lua"), "w") as f:
        f.write(_WIREPLUMBER_LUA)
    run = os.path.join(tmp, "run")
    env = {
        "XDG_RUNTIME_DIR": run,
        "XDG_CONFIG_HOME": os.path.join(tmp, "config"),
        "XDG_STATE_HOME": os.path.join(tmp, "state"),  # WirePlumber keeps default-node choices here
        "PULSE_SERVER": f"unix:{os.path.join(run, 'pulse', 'native')}",
        "PULSE_COOKIE": os.path.join(tmp, "cookie"),
    }
    # A recorder asking for 10 ms makes the graph run 256-frame (5.3 ms) quanta; on a 2-core
    # machine its own node then missed cycles (3 xruns in 12 s in pw-top) and lost samples,
    # gaps the player never made. At 40 ms the graph runs 1024-frame quanta, as on a desktop
    # where no client asks for less, and the recorder lost nothing.
    srv = PipeWireServer(env=env, pid=0, keeper_pid=None, dir=tmp, rate=rate, channels=channels,
                         keeper=False, timeout=timeout, recorder_latency_ms=40.0)
    try:
        _launch_pipewire(srv)
    except BaseException:
        srv.stop()
        raise
    return srv


def _launch_pipewire(srv: PipeWireServer) -> None:
    """Starts the three daemons of ``srv``; returns once the null sink is the default sink."""
    t0 = time.monotonic()
    socket_path = os.path.join(srv.env["XDG_RUNTIME_DIR"], "pipewire-0")

    def pipewire_listening() -> bool:
        # A killed daemon leaves its socket file behind: only a connection says the new
        # one listens.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(socket_path)
            except OSError:
                return False
            return True

    log = open(srv.log_path, "ab")
    try:
        for daemon in _DAEMONS:
            srv._procs.append(subprocess.Popen(
                [daemon], env={**os.environ, **srv.env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            if daemon == "pipewire":
                srv.pid = srv._procs[-1].pid
                # WirePlumber and pipewire-pulse exit ("Failed to connect to PipeWire") if
                # they come up before it listens; on CI a restart lost that race.
                _wait_for(pipewire_listening, t0 + srv.timeout, srv._procs, "pipewire never listened", srv)
    finally:
        log.close()  # the children hold their own descriptors

    def default_sink_up() -> bool:
        try:
            return srv.pactl("get-default-sink").strip() == SINK
        except (subprocess.SubprocessError, OSError):
            return False

    _wait_for(default_sink_up, t0 + srv.timeout, srv._procs, "null sink never became the default", srv)
    srv.startup_s = time.monotonic() - t0


@contextlib.contextmanager
def pipewire_null_sink(rate: int = 48000, timeout: float = 15.0,
                       set_environ: bool = True) -> Iterator[PipeWireServer]:
    """Start PipeWire with a null sink; yield the server; stop it by PID.

    While inside, os.environ carries ``srv.env`` (unless ``set_environ=False``); the
    previous values are restored on exit.
    """
    with serving(start_pipewire_null_sink(rate, timeout=timeout), set_environ) as srv:
        yield srv
