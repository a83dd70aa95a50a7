"""Headless PulseAudio null sink for audio tests and benchmarks (no sound card needed).

duplex's one PulseAudio launcher (``scripts/audio-server.sh start|stop`` runs this file):
a PulseAudio daemon with a null sink ``nullsink`` (48 kHz stereo) as default sink, its
monitor as default source, plus a "keeper" stream (``pacat`` recording the monitor at
10 ms latency) so the idle null sink does not render in 2 s blocks. Started and stopped
by PID. Standard library only, so it also runs as a script without duplex built:
``python3 python/duplex/testing/audio_server.py start|stop DIR|check``.

    from duplex.testing.audio_server import available, pulse_null_sink

    if not available():
        pytest.skip("pulseaudio not installed (scripts/audio-server.sh install)")
    with pulse_null_sink() as srv:
        # os.environ now has XDG_RUNTIME_DIR / PULSE_SERVER / PULSE_COOKIE, so
        # in-process clients (cpal -> ALSA `default` -> pulse plugin) find it.
        subprocess.run(["aplay", ...], env=srv.env)  # or rely on os.environ

Gotcha for in-process ALSA clients (cpal's ALSA host): alsa-lib decides whether
``default`` exists (it is the pulse plugin only while a server is reachable) when
it loads its config, and cpal keeps that config until every cpal Host/Device/Stream
is dropped. Start the server before the first cpal call (session fixture), or
open the ALSA device ``pulse``, which is always defined.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, TypeVar

__all__ = ["available", "pulse_null_sink", "start_null_sink", "stop_server", "serving", "PulseServer", "SINK", "SOURCE"]

SINK = "nullsink"
SOURCE = "nullsink.monitor"
_CLIENT_TIMEOUT = 5.0  # seconds, per pactl call
_Server = TypeVar("_Server", bound="PulseServer")


def available() -> bool:
    """True if the ``pulseaudio`` daemon (and the pactl/pacat clients) are installed."""
    return all(shutil.which(b) for b in ("pulseaudio", "pactl", "pacat"))


@dataclass
class PulseServer:
    """A running PulseAudio null-sink server (from :func:`start_null_sink`)."""

    env: Dict[str, str]  # what clients need: XDG_RUNTIME_DIR, PULSE_SERVER, PULSE_COOKIE
    pid: int  # pulseaudio daemon
    keeper_pid: Optional[int]
    dir: str  # temp dir: socket, log, cookie
    startup_s: float = 0.0
    rate: int = 48000
    channels: int = 2
    keeper: bool = True
    timeout: float = 15.0
    #: What an independent recorder of the monitor (``pacat --latency-msec``) should ask for.
    recorder_latency_ms: float = 10.0
    _procs: List[subprocess.Popen] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stops the keeper, then the daemon (SIGTERM, then SIGKILL), and removes the dir."""
        for p in reversed(self._procs):  # keeper first, then the daemon
            _stop(p)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def export_lines(self) -> str:
        """``export K=V`` lines for a shell: the client environment plus the PIDs and dir."""
        values = {**self.env, "DUPLEX_AUDIO_DIR": self.dir, "DUPLEX_AUDIO_PA_PID": str(self.pid),
                  "DUPLEX_AUDIO_KEEPER_PID": str(self.keeper_pid or "")}
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())

    @property
    def log_path(self) -> str:
        """The daemon's log file."""
        return os.path.join(self.dir, "pulse.log")

    def log(self) -> str:
        """The daemon's log so far ("" if unreadable)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pactl(self, *args: str) -> str:
        """Runs ``pactl`` against this server; returns its stdout (raises on failure)."""
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=_CLIENT_TIMEOUT, check=True,
        ).stdout

    def sink_latency_us(self) -> Optional[int]:
        """The null sink's current latency in microseconds, or None if unknown."""
        try:
            m = re.search(r"^\s*Latency: (\d+) usec", self.pactl("list", "sinks"), re.M)
        except (subprocess.SubprocessError, OSError):
            return None
        return int(m.group(1)) if m else None

    # -- devices that come and go (tests of the engine's supervisor) ---------------------

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kills the daemon and its keeper by PID, as a crash would; waits until gone.
        The dir (and the socket path) stay, for :meth:`restart`."""
        for p in self._procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(sig)
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
            _stop(p)
        self._procs.clear()
        self.keeper_pid = None

    def restart(self) -> None:
        """Starts the daemon (and keeper) again on the same socket, after :meth:`kill`."""
        self.kill()
        try:
            _launch(self)
        except BaseException:
            self.kill()
            raise

    def add_sink(self, name: str, make_default: bool = False) -> int:
        """Loads another null sink (a headset being plugged in); returns its module index."""
        index = int(self.pactl(
            "load-module", "module-null-sink", f"sink_name={name}", f"rate={self.rate}",
            f"channels={self.channels}", f"sink_properties=device.description={name}").strip())
        if make_default:
            self.pactl("set-default-sink", name)
        return index

    def remove_module(self, index: int) -> None:
        """Unloads a module (e.g. a sink): its streams move to another sink, or die."""
        self.pactl("unload-module", str(index))

    def module_index(self, module: str) -> Optional[int]:
        """Index of the first loaded module of that name (e.g. ``module-null-sink``)."""
        for line in self.pactl("list", "short", "modules").splitlines():
            cols = line.split("\t")
            if len(cols) >= 2 and cols[1] == module:
                return int(cols[0])
        return None

    def sink_inputs(self) -> List[Dict[str, str]]:
        """The playback streams: their ``index``, ``sink`` index and ``client`` index."""
        out = []
        for line in self.pactl("list", "short", "sink-inputs").splitlines():
            cols = line.split("\t")
            if len(cols) >= 3:
                out.append({"index": cols[0], "sink": cols[1], "client": cols[2]})
        return out

    def sink_index(self, name: str) -> Optional[str]:
        """Index of the sink called ``name``, or None."""
        for line in self.pactl("list", "short", "sinks").splitlines():
            cols = line.split("\t")
            if len(cols) >= 2 and cols[1] == name:
                return cols[0]
        return None


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, wait up to `grace` s, then SIGKILL; always reaps."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def _wait_for(pred, deadline: float, procs: List[subprocess.Popen], what: str, srv: PulseServer):
    while not pred():
        dead = [p.args[0] for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{dead} exited" if dead else "timed out"
            raise RuntimeError(f"{type(srv).__name__}: {what} ({why}); log:\n{srv.log()[-2000:]}")
        time.sleep(0.05)


def start_null_sink(rate: int = 48000, channels: int = 2, keeper: bool = True,
                    timeout: float = 15.0) -> PulseServer:
    """Starts PulseAudio with a null sink and returns once it is usable; stop it with
    :meth:`PulseServer.stop` (or :func:`stop_server` from another process).

    Returns once the sink answers and (with ``keeper``) its latency is < 20 ms, about
    2.1 s after launch. The daemon and keeper run in their own session, so they outlive
    this process unless stopped. On failure everything started is stopped again.
    """
    if not available():
        raise RuntimeError("pulseaudio/pactl/pacat not installed: run scripts/audio-server.sh install")
    tmp = tempfile.mkdtemp(prefix="duplex-audio.")
    os.makedirs(os.path.join(tmp, "pulse"), mode=0o700)
    socket = os.path.join(tmp, "pulse", "native")
    env = {
        "XDG_RUNTIME_DIR": tmp,
        "PULSE_SERVER": f"unix:{socket}",
        "PULSE_COOKIE": os.path.join(tmp, "cookie"),  # keeps clients out of ~/.config/pulse
    }
    with open(os.path.join(tmp, "null.pa"), "w") as f:
        f.write(
            f"load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket={socket}\n"
            f"load-module module-null-sink sink_name={SINK} rate={rate} channels={channels}"
            " sink_properties=device.description=NullSink\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SOURCE}\n"
        )
    srv = PulseServer(env=env, pid=0, keeper_pid=None, dir=tmp, rate=rate, channels=channels,
                      keeper=keeper, timeout=timeout)
    try:
        _launch(srv)
    except BaseException:
        srv.stop()
        raise
    return srv


def _launch(srv: PulseServer) -> None:
    """Starts the daemon (and keeper) of ``srv`` in its dir; returns once it is usable."""
    t0 = time.monotonic()
    child_env = {**os.environ, **srv.env}
    popen: Dict[str, Any] = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    procs = srv._procs
    daemon = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "-n", "-F", os.path.join(srv.dir, "null.pa"),
         "--exit-idle-time=-1", "--use-pid-file=no", f"--log-target=file:{srv.log_path}"],
        # PULSE_STATE_PATH: the daemon would otherwise create ~/.config/pulse
        env={**child_env, "PULSE_STATE_PATH": os.path.join(srv.dir, "pa-state")}, **popen)
    procs.append(daemon)
    srv.pid = daemon.pid
    deadline = t0 + srv.timeout

    def sink_up() -> bool:
        try:
            return SINK in srv.pactl("list", "short", "sinks")
        except (subprocess.SubprocessError, OSError):
            return False

    _wait_for(sink_up, deadline, procs, "sink never appeared", srv)
    if srv.keeper:
        kp = subprocess.Popen(
            ["pacat", "--record", "-s", srv.env["PULSE_SERVER"], "-d", SOURCE,
             "--latency-msec=10", "--raw", "--client-name=duplex-keeper"],
            env=child_env, **popen)
        procs.append(kp)
        srv.keeper_pid = kp.pid

        def low_latency() -> bool:
            lat = srv.sink_latency_us()
            return lat is not None and lat < 20000

        _wait_for(low_latency, deadline, procs, "sink latency never dropped below 20 ms", srv)
    srv.startup_s = time.monotonic() - t0


@contextlib.contextmanager
def pulse_null_sink(
    rate: int = 48000,
    channels: int = 2,
    keeper: bool = True,
    timeout: float = 15.0,
    set_environ: bool = True,
) -> Iterator[PulseServer]:
    """Start PulseAudio with a null sink; yield a PulseServer; stop it by PID.

    See :func:`start_null_sink`. While inside, os.environ carries ``srv.env`` (unless
    ``set_environ=False``); the previous values are restored on exit.
    """
    with serving(start_null_sink(rate, channels, keeper, timeout), set_environ) as srv:
        yield srv


@contextlib.contextmanager
def serving(srv: _Server, set_environ: bool = True) -> Iterator[_Server]:
    """Yields a started server (of either kind) with its client environment in os.environ
    (unless ``set_environ=False``); on exit restores the environment and stops the server."""
    saved = {k: os.environ.get(k) for k in srv.env}
    try:
        if set_environ:
            os.environ.update(srv.env)
        yield srv
    finally:
        if set_environ:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        srv.stop()


def _ours(pid: int, marker: str) -> bool:
    """Is ``pid`` alive, not a zombie, and is its command line one of ours (mentions
    ``marker``)? Guards against PID reuse."""
    try:
        with open(f"/proc/{pid}/status") as f:
            if any(line.startswith("State:") and "Z" in line.split()[1] for line in f):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except (OSError, IndexError):
        return False


def stop_server(dir: str, pids: List[int], grace: float = 5.0) -> None:
    """Stops a server started by another process (``start``): SIGTERM to each PID whose
    command line mentions ``dir``, SIGKILL after ``grace`` s, then removes ``dir``."""
    mine = [p for p in pids if p > 0 and _ours(p, dir)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while mine and time.monotonic() < deadline:
            mine = [p for p in mine if _ours(p, dir)]
            time.sleep(0.05)
        if not mine:
            break
    if os.path.basename(dir.rstrip("/")).startswith("duplex-audio."):
        shutil.rmtree(dir, ignore_errors=True)


def _self_check() -> int:
    if not available():
        print("pulseaudio not installed")
        return 1
    before = dict(os.environ)
    with pulse_null_sink() as s:
        print(f"up in {s.startup_s:.2f} s: pid={s.pid} keeper={s.keeper_pid} env={s.env}")
        print("sink latency us:", s.sink_latency_us())
        print("default sink/source:", s.pactl("get-default-sink").strip(), s.pactl("get-default-source").strip())
        assert os.environ["PULSE_SERVER"] == s.env["PULSE_SERVER"]
        pids = [s.pid, s.keeper_pid]
    assert dict(os.environ) == before, "environment not restored"
    assert not any(os.path.exists(f"/proc/{p}") for p in pids), "leftover process"
    assert not os.path.exists(s.dir), "leftover dir"
    print("stopped cleanly")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``start``: start a server, print ``export`` lines (also kept in DIR/state) and leave
    it running; ``stop [DIR]``: stop it (DIR defaults to $DUPLEX_AUDIO_DIR); ``check``: start,
    inspect and stop one."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["start"] and len(args) == 1:
        try:
            timeout = float(os.environ.get("AUDIO_SERVER_START_TIMEOUT", "15"))
            srv = start_null_sink(timeout=timeout)
        except RuntimeError as exc:
            print(f"audio-server: {exc}", file=sys.stderr)
            return 1
        srv._procs.clear()  # detached: it outlives this process until `stop`
        lines = srv.export_lines()
        with open(os.path.join(srv.dir, "state"), "w") as f:
            f.write(lines)
        sys.stdout.write(lines)
        print(f"audio-server: ready: pid {srv.pid}, keeper {srv.keeper_pid}, dir {srv.dir}, "
              f"sink latency {srv.sink_latency_us()} us", file=sys.stderr)
        return 0
    if args[:1] == ["stop"] and len(args) <= 2:
        directory = args[1] if len(args) == 2 else os.environ.get("DUPLEX_AUDIO_DIR", "")
        if not directory:
            print("audio-server: stop: no dir (pass it, or set DUPLEX_AUDIO_DIR)", file=sys.stderr)
            return 1
        state: Dict[str, str] = {}
        with contextlib.suppress(OSError):
            with open(os.path.join(directory, "state")) as f:
                for line in f:
                    key, _, value = line.removeprefix("export ").strip().partition("=")
                    state[key] = shlex.split(value)[0] if value else ""
        pids = [int(v) for k in ("DUPLEX_AUDIO_KEEPER_PID", "DUPLEX_AUDIO_PA_PID")
                if (v := state.get(k) or (os.environ.get(k) if len(args) == 1 else "")) and v.isdigit()]
        stop_server(directory, pids)
        return 0
    if args == ["check"]:
        return _self_check()
    print("usage: audio_server.py start | stop [DIR] | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
