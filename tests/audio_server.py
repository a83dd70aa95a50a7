"""Headless PulseAudio null sink for audio tests (no sound card needed).

Same server as ``scripts/audio-server.sh start``: a PulseAudio daemon with a null
sink ``nullsink`` (48 kHz stereo) as default sink, its monitor as default source,
plus a "keeper" stream (``pacat`` recording the monitor at 10 ms latency) so the
idle null sink does not render in 2 s blocks. Started and stopped by PID.

    from audio_server import available, pulse_null_sink

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
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional

__all__ = ["available", "pulse_null_sink", "PulseServer", "SINK", "SOURCE"]

SINK = "nullsink"
SOURCE = "nullsink.monitor"
_CLIENT_TIMEOUT = 5.0  # seconds, per pactl call


def available() -> bool:
    """True if the ``pulseaudio`` daemon (and the pactl/pacat clients) are installed."""
    return all(shutil.which(b) for b in ("pulseaudio", "pactl", "pacat"))


@dataclass
class PulseServer:
    env: Dict[str, str]  # what clients need: XDG_RUNTIME_DIR, PULSE_SERVER, PULSE_COOKIE
    pid: int  # pulseaudio daemon
    keeper_pid: Optional[int]
    dir: str  # temp dir: socket, log, cookie
    startup_s: float = 0.0
    _procs: List[subprocess.Popen] = field(default_factory=list, repr=False)

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "pulse.log")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def pactl(self, *args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=_CLIENT_TIMEOUT, check=True,
        ).stdout

    def sink_latency_us(self) -> Optional[int]:
        try:
            m = re.search(r"^\s*Latency: (\d+) usec", self.pactl("list", "sinks"), re.M)
        except (subprocess.SubprocessError, OSError):
            return None
        return int(m.group(1)) if m else None


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
            raise RuntimeError(f"PulseAudio null sink: {what} ({why}); log:\n{srv.log()[-2000:]}")
        time.sleep(0.05)


@contextlib.contextmanager
def pulse_null_sink(
    rate: int = 48000,
    channels: int = 2,
    keeper: bool = True,
    timeout: float = 15.0,
    set_environ: bool = True,
) -> Iterator[PulseServer]:
    """Start PulseAudio with a null sink; yield a PulseServer; stop it by PID.

    Returns once the sink answers and (with ``keeper``) its latency is < 20 ms,
    about 2.1 s after launch. While inside, os.environ carries ``srv.env``
    (unless ``set_environ=False``); the previous values are restored on exit.
    """
    if not available():
        raise RuntimeError("pulseaudio/pactl/pacat not installed: run scripts/audio-server.sh install")
    t0 = time.monotonic()
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
    child_env = {**os.environ, **env}
    popen = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 start_new_session=True)
    procs: List[subprocess.Popen] = []
    saved = {k: os.environ.get(k) for k in env}
    environ_set = False
    try:
        daemon = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "-n", "-F", os.path.join(tmp, "null.pa"),
             "--exit-idle-time=-1", "--use-pid-file=no",
             f"--log-target=file:{os.path.join(tmp, 'pulse.log')}"],
            # PULSE_STATE_PATH: the daemon would otherwise create ~/.config/pulse
            env={**child_env, "PULSE_STATE_PATH": os.path.join(tmp, "pa-state")}, **popen)
        procs.append(daemon)
        srv = PulseServer(env=env, pid=daemon.pid, keeper_pid=None, dir=tmp, _procs=procs)
        deadline = t0 + timeout

        def sink_up() -> bool:
            try:
                return SINK in srv.pactl("list", "short", "sinks")
            except (subprocess.SubprocessError, OSError):
                return False

        _wait_for(sink_up, deadline, procs, "sink never appeared", srv)
        if keeper:
            kp = subprocess.Popen(
                ["pacat", "--record", "-s", env["PULSE_SERVER"], "-d", SOURCE,
                 "--latency-msec=10", "--raw", "--client-name=duplex-keeper"],
                env=child_env, **popen)
            procs.append(kp)
            srv.keeper_pid = kp.pid

            def low_latency() -> bool:
                lat = srv.sink_latency_us()
                return lat is not None and lat < 20000

            _wait_for(low_latency, deadline, procs, "sink latency never dropped below 20 ms", srv)
        srv.startup_s = time.monotonic() - t0
        if set_environ:
            os.environ.update(env)
            environ_set = True
        yield srv
    finally:
        if environ_set:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for p in reversed(procs):  # keeper first, then the daemon
            _stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # self-check: python3 tests/audio_server.py
    import sys

    if not available():
        print("pulseaudio not installed")
        sys.exit(1)
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
