"""The whole-session soak: a long Live conversation on the virtual device, faster than real
time, with barge-ins, reconnects and video.

The client is what ``duplex talk`` runs: an :class:`~duplex.AudioEngine` on a virtual
device running ``speed`` times faster than real time, a :class:`~duplex.LiveConversation`
through the real google-genai SDK, and a :class:`~duplex.video.VideoStreamer` sending a
synthetic camera at 1 frame per simulated second. The user speaks utterances of 0.6-2.5 s
with pauses of 0.5-8 s, so about a third of the answers are cut by a barge-in. The server
is the emulator, in a process of its own (:mod:`duplex.bench.soak_emulator`), which paces
its answers for that speed and gives every connection one fault: ``goAway`` then close,
an abrupt 1011, or a dropped TCP connection; the client resumes each time with its handle.

Sampled every simulated minute while connected: RSS, threads and open file descriptors of
this process; their slopes (least squares, after a warm-up) are reported per simulated
hour. Checked at the end: the conversation never failed; playback accounted exactly
(``frames_pushed = frames_played + frames_flushed`` after ``stop()``); no capture frame
dropped; every chunk read went out (``chunks_read = chunks_sent`` + the one in hand);
what the server received equals what went out, less what was in flight when a connection
was cut (reported); video frames produced = sent + replaced by a newer one + in hand.

Run it: ``duplex bench --soak 60`` (``--soak-speed 5`` on a loaded machine) or
``python -m duplex.bench.soak_live --minutes 60 [--speed 5]``. The speed is also the
starvation it tolerates: the capture ring is 120 simulated seconds, so a process that
falls more than 120/speed wall seconds behind the device drops capture, and the check
fails saying so (with the CPU the client needed and the machine's load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..devices import VirtualDevice
from ..engine import AudioEngine
from .soak import _fds, _rss_mb, _threads

__all__ = ["LiveSoakResult", "run_live_soak", "tolerated_starvation_s", "main"]

RATE = 48_000
#: The capture ring must cover a reconnect in simulated time (a 1 s wall reconnect at 10x
#: is 10 s of microphone audio), and a process starved by a loaded machine: at 10x, 120 s
#: is 12 s of wall time (:func:`tolerated_starvation_s`), at 5x 24 s. At 10x the client
#: needs about a quarter of a core and the emulator a seventh (measured: ``client_cpu_s``),
#: so a machine loaded far beyond its cores starves it for longer: that overflow is the
#: speed-up's, not the session's. A real-time session needs far less.
CAPTURE_BUFFER_MS = 120_000
PLAYBACK_BUFFER_MS = 30_000
#: Samples in the first simulated minutes are warm-up: the rings' pages are first touched as
#: their write index goes round (the capture ring alone is 23 MB), and pools grow.
WARMUP_S = 150.0
#: Allowed growth of the resident set over the soak after warm-up, MB.
RSS_SLACK_MB = 8.0


class _SyntheticCamera:
    """A moving test pattern, 320x240, as a :class:`~duplex.video.VideoSource`."""

    @staticmethod
    def make() -> Any:
        from ..video.sources import VideoSource

        class SyntheticCamera(VideoSource):
            def __init__(self) -> None:
                super().__init__("synthetic camera")
                self._n = 0
                y, x = np.mgrid[0:240, 0:320]
                base = ((x + y) % 256).astype(np.uint8)
                # Made once: the worker thread then does little but encode.
                self._frames = [np.stack([np.roll(base, k * 11, axis=1), base, np.full_like(base, k * 8)], axis=-1)
                                for k in range(32)]

            def _open(self) -> None:
                pass

            def _read(self) -> np.ndarray:
                self._n += 1
                return self._frames[self._n % len(self._frames)]

            def _close(self) -> None:
                pass

        return SyntheticCamera()


def speech_pattern(rng: np.random.Generator, seconds: float, rate: int = 16_000) -> np.ndarray:
    """The user's side: voiced utterances (a buzzy 150 Hz voice, -12 dBFS) of 0.6-2.5 s with
    pauses of 0.5-8 s, as float32 at ``rate``."""
    out = np.zeros(int(seconds * rate), np.float32)
    pos = int(rng.uniform(0.5, 2.0) * rate)
    while pos < out.size:
        n = int(rng.uniform(0.6, 2.5) * rate)
        t = np.arange(min(n, out.size - pos)) / rate
        f0 = 150 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voice = sum(np.sin(k * phase) / k for k in range(1, 6))
        out[pos:pos + t.size] = 0.25 * voice / 2.3
        pos += n + int(rng.uniform(0.5, 8.0) * rate)
    return out


@dataclass
class LiveSoakResult:
    """What a whole-session soak did and whether everything held."""

    speed: float = 0.0
    simulated_s: float = 0.0
    wall_s: float = 0.0
    connections: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    reconnects: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    interrupts: int = 0
    underruns: int = 0
    chunks_read: int = 0
    chunks_sent: int = 0
    chunks_received_by_server: int = 0
    chunks_lost_in_cut_connections: int = 0
    #: Per connection: its fault, chunks sent, chunks the server received (``chunks``).
    per_connection: list[dict[str, Any]] = field(default_factory=list)
    video_frames_produced: int = 0
    video_frames_sent: int = 0
    video_frames_replaced: int = 0
    video_frames_dropped_at_reconnect: int = 0
    video_frames_received_by_server: int = 0
    video_deadlines_skipped: int = 0
    frames_pushed: int = 0
    frames_played: int = 0
    frames_flushed: int = 0
    frames_buffered_after_stop: int = 0
    capture_overflow_frames: int = 0
    malformed_messages: int = 0
    #: Wall seconds of the longest gap between the sampler's 0.1 s wake-ups, and how many
    #: gaps were over 1 s: this process was starved (a loaded machine), not the session.
    longest_stall_s: float = 0.0
    stalls_over_1s: int = 0
    #: CPU seconds this process (the client) and the emulator's used: the share of a core a
    #: session needs at ``speed`` x real time, against which the machine's load is judged.
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    #: The machine's 1-minute load average, highest seen at the minute samples and at the end.
    max_load: float = 0.0
    sample_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    slopes_per_hour: dict[str, float] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return not self.failures

    def summary(self) -> str:
        """A few lines for a terminal."""
        speedup = self.simulated_s / self.wall_s if self.wall_s else float("nan")
        s = self.slopes_per_hour
        lines = [
            f"live soak: {self.simulated_s / 60:.1f} simulated min in {self.wall_s:.1f} s wall ({speedup:.1f}x), "
            f"{self.connections} connections (faults {self.faults}), reconnects {self.reconnects}",
            f"turns {self.turns}, interrupts {self.interrupts}, underruns {self.underruns}, "
            f"malformed {self.malformed_messages}, longest stall of this process {self.longest_stall_s} s wall "
            f"({self.stalls_over_1s} over 1 s; it tolerates {tolerated_starvation_s(self.speed):.0f} s behind "
            f"the device at {self.speed:g}x)" if self.speed else f"({self.stalls_over_1s} over 1 s)",
            f"CPU: client {self.client_cpu_s} s ({self.client_cpu_s / self.wall_s if self.wall_s else 0:.2f} of a core), "
            f"emulator {self.server_cpu_s} s; load average up to {self.max_load} on {os.cpu_count()} cores",
            f"playback: pushed {self.frames_pushed} = played {self.frames_played} + flushed {self.frames_flushed} "
            f"+ buffered {self.frames_buffered_after_stop}",
            f"capture: {self.chunks_read} chunks read, {self.chunks_sent} sent, {self.chunks_received_by_server} "
            f"received by the server, {self.chunks_lost_in_cut_connections} in flight when a connection was cut, "
            f"{self.capture_overflow_frames} frames dropped",
            f"video: {self.video_frames_produced} produced, {self.video_frames_sent} sent, "
            f"{self.video_frames_replaced} replaced by a newer one, {self.video_frames_dropped_at_reconnect} cut by a "
            f"reconnect, {self.video_frames_received_by_server} received "
            f"({self.video_deadlines_skipped} deadlines skipped)",
            (f"RSS {self.rss_mb[0]:.1f} -> {self.rss_mb[-1]:.1f} MB ({s.get('rss_mb', 0):+.2f} MB/h), threads "
             f"{min(self.threads)}..{max(self.threads)} ({s.get('threads', 0):+.2f}/h), fds {min(self.fds)}.."
             f"{max(self.fds)} ({s.get('fds', 0):+.2f}/h), {len(self.rss_mb)} samples")
            if self.rss_mb else "no resource samples",
            "all checks held" if self.ok else "FAILED: " + "; ".join(self.failures),
        ]
        return "\n".join(lines)


def tolerated_starvation_s(speed: float) -> float:
    """Wall seconds this process may fall behind a ``speed`` x device, in total before it
    catches up, without losing capture: the capture ring's length in wall time. (A session at
    real time on the engine's default 2 s ring tolerates 2 s.)"""
    return CAPTURE_BUFFER_MS / 1000 / speed


def _slope_per_hour(t_s: list[float], values: list[float]) -> float:
    if len(t_s) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(t_s) / 3600.0, np.asarray(values, dtype=float), 1)[0])


def _start_server(speed: float, seed: int, fault_after_s: tuple[float, float]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "duplex.bench.soak_emulator", str(speed), str(seed), str(fault_after_s[0]),
         str(fault_after_s[1])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the soak's emulator process did not start")
    return proc, json.loads(line)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc (0.0 if unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _stop_server(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        out, _ = proc.communicate("stop\n", timeout=30)
        return json.loads(out.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - the soak still reports the client side
        proc.kill()
        proc.wait()
        return {"error": f"{type(exc).__name__}: {exc}"}


async def _converse(result: LiveSoakResult, engine: AudioEngine, server: dict[str, str], minutes: float,
                    speed: float, warmup_s: float, progress: bool) -> Any:
    import ssl

    from google import genai

    from ..live import LiveConfig, LiveConversation, recommended_websocket_args
    from ..video import VideoStreamer

    client = genai.Client(api_key="soak", http_options={
        "base_url": server["base_url"], "api_version": "v1beta",
        "async_client_args": {"ssl": ssl.create_default_context(cafile=server["cert"]),
                              **recommended_websocket_args()}})
    video = VideoStreamer(_SyntheticCamera.make(), fps=min(60.0, speed), max_side=320)
    config = LiveConfig(model="gemini-3.8-live", max_reconnects=5, stats_interval_s=3600.0)
    sent_at_connect: list[int] = []

    class Conversation(LiveConversation):
        # Snapshots taken as the event is emitted, in step with the connection's life.
        def _emit(self, kind: Any, text: str = "", data_from: dict[str, Any] | None = None, /,
                  **data: Any) -> None:
            if kind == "connected":
                sent_at_connect.append(self.chunks_sent)
            super()._emit(kind, text, data_from, **data)

    conv = Conversation(engine, client, config, video=video)
    conv.sent_at_connect = sent_at_connect  # type: ignore[attr-defined]
    kinds: Counter[str] = Counter()
    connected = [False]

    async def watch() -> None:
        async for ev in conv.events():
            kinds[ev.kind] += 1
            if ev.kind == "connected":
                connected[0] = True
            elif ev.kind == "reconnecting":
                connected[0] = False
                cause = "go_away" if ev.text == "go_away" else f"close {ev.data.get('code')}"
                result.reconnects[cause] = result.reconnects.get(cause, 0) + 1
            elif ev.kind == "error":
                result.failures.append(f"error event: {ev.text}")

    async def sample() -> None:
        next_at = 60.0
        woke = time.monotonic()
        while True:
            await asyncio.sleep(0.1)
            gap, woke = time.monotonic() - woke, time.monotonic()
            result.longest_stall_s = round(max(result.longest_stall_s, gap), 2)
            result.stalls_over_1s += gap > 1.0
            result.max_load = max(result.max_load, round(os.getloadavg()[0], 1))
            sim = engine.stats().frames_rendered / RATE
            if sim >= minutes * 60:
                conv.stop()
                return
            if sim >= next_at and connected[0]:
                next_at = (sim // 60 + 1) * 60
                if sim < warmup_s:
                    continue
                result.sample_s.append(round(sim, 1))
                result.rss_mb.append(round(_rss_mb(), 2))
                result.threads.append(_threads())
                result.fds.append(_fds())
                if progress:
                    print(f"  {sim / 60:5.1f} min  RSS {result.rss_mb[-1]:.1f} MB  threads {result.threads[-1]}  "
                          f"fds {result.fds[-1]}  connections {conv.connections}  chunks {conv.chunks_sent}",
                          file=sys.stderr, flush=True)

    watcher = asyncio.create_task(watch())
    sampler = asyncio.create_task(sample())
    await video.__aenter__()
    try:
        # A wall-clock bound on top, in case the device were much slower than asked.
        await conv.run(duration=minutes * 60 / speed * 3 + 60)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the soak must say what held
        result.failures.append(f"the conversation ended with {type(exc).__name__}: {exc}")
    finally:
        sampler.cancel()
        await video.aclose()
        await asyncio.wait_for(watcher, 10)
    result.connections = conv.connections
    result.turns = kinds["turn_complete"]
    result.interrupts = kinds["interrupted"]
    result.chunks_sent = conv.chunks_sent
    result.malformed_messages = conv.malformed_messages
    result.video_frames_produced = video.frames_produced
    result.video_frames_sent = conv.frames_sent
    result.video_frames_replaced = video.frames_replaced
    result.video_frames_dropped_at_reconnect = conv.frames_dropped
    result.video_deadlines_skipped = video.deadlines_skipped
    return conv


def run_live_soak(minutes: float = 60.0, speed: float = 10.0, seed: int = 0, *,
                  fault_after_s: tuple[float, float] = (60.0, 240.0), warmup_s: float = WARMUP_S,
                  progress: bool = False) -> LiveSoakResult:
    """Runs ``minutes`` of simulated conversation at ``speed`` x real time; returns what held.

    ``fault_after_s``: each connection meets its fault this many simulated seconds after it
    opens (uniformly within the range). Resources are sampled from ``warmup_s`` on."""
    result = LiveSoakResult(speed=speed)
    rng = np.random.default_rng(seed)
    mic = speech_pattern(rng, 180.0)
    proc, server = _start_server(speed, seed, fault_after_s)
    engine = AudioEngine(backend=VirtualDevice(sample_rate=RATE, speed=speed, input=mic, input_rate=16_000,
                                               input_loop=True, output=None),
                         prebuffer_ms=120, capture_buffer_ms=CAPTURE_BUFFER_MS,
                         playback_buffer_ms=PLAYBACK_BUFFER_MS)
    t0, cpu0, server_cpu0 = time.monotonic(), time.process_time(), _cpu_s(proc.pid)
    try:
        engine.start()
        conv = asyncio.run(_converse(result, engine, server, minutes, speed, warmup_s, progress))
        engine.stop()
        s = engine.stats()
    finally:
        engine.close()
        result.client_cpu_s = round(time.process_time() - cpu0, 1)
        result.server_cpu_s = round(_cpu_s(proc.pid) - server_cpu0, 1)
        result.server = _stop_server(proc)
    result.wall_s = round(time.monotonic() - t0, 2)
    result.max_load = max(result.max_load, round(os.getloadavg()[0], 1))
    _check(result, s, conv, minutes)
    return result


def _check(result: LiveSoakResult, s: Any, conv: Any, minutes: float) -> None:
    result.simulated_s = round(s.frames_rendered / RATE, 2)
    result.underruns = s.underruns
    result.frames_pushed, result.frames_played = s.frames_pushed, s.frames_played
    result.frames_flushed, result.frames_buffered_after_stop = s.frames_flushed, s.playback_buffered_frames
    result.capture_overflow_frames = s.capture_overflow_frames
    result.chunks_read = s.chunks_read
    totals = result.server.get("totals", {})
    result.faults = result.server.get("faults", {})
    result.chunks_received_by_server = int(totals.get("audio_samples", 0)) // 320
    result.chunks_lost_in_cut_connections = result.chunks_sent - result.chunks_received_by_server
    bounds = [*conv.sent_at_connect, result.chunks_sent]
    for i, server_side in enumerate(result.server.get("per_connection", [])):
        sent = bounds[i + 1] - bounds[i] if i + 1 < len(bounds) else 0
        result.per_connection.append({**server_side, "sent": sent})
        if server_side["fault"] == "go_away" and sent != server_side["chunks"]:
            result.failures.append(f"connection {i} (goAway, a clean reconnect) sent {sent} chunks, "
                                   f"the server received {server_side['chunks']}")
    result.video_frames_received_by_server = int(totals.get("video_frames", 0))
    f = result.failures
    if "error" in result.server:
        f.append(f"the emulator process: {result.server['error']}")
    if s.frames_pushed != s.frames_played + s.frames_flushed + s.playback_buffered_frames:
        f.append("playback frames unaccounted")
    if s.playback_buffered_frames:
        f.append(f"{s.playback_buffered_frames} playback frames still buffered after stop()")
    if s.capture_overflow_frames:
        # The ring covers CAPTURE_BUFFER_MS of simulated time, which is that divided by the
        # speed in wall time: a process starved (or too slow to catch up) for longer than
        # that in total overflows it, however healthy the session is at real time.
        f.append(f"{s.capture_overflow_frames} capture frames ({s.capture_overflow_frames / RATE:.1f} s) dropped: "
                 f"this process fell more than {tolerated_starvation_s(result.speed):.0f} s of wall time behind "
                 f"the device (its {CAPTURE_BUFFER_MS / 1000:.0f} s ring at {result.speed:g}x), which is all "
                 f"the starvation this soak tolerates; longest stall {result.longest_stall_s} s wall, "
                 f"{result.stalls_over_1s} over 1 s, the client needed "
                 f"{result.client_cpu_s / max(result.wall_s, 1e-9):.2f} of a core, load average up to "
                 f"{result.max_load} on {os.cpu_count()} cores: on a loaded machine, run it at a lower --speed")
    in_hand = int(conv._pending_chunk is not None)
    if s.chunks_read != result.chunks_sent + in_hand:
        f.append(f"chunks read {s.chunks_read} != sent {result.chunks_sent} + in hand {in_hand}")
    if result.chunks_lost_in_cut_connections < 0:
        f.append("the server received more audio than was sent")
    # A cut connection (1011, or a dropped socket) loses what was in flight: chunks the
    # client had written when the server stopped reading. Reported, not failed; a negative
    # count would mean audio was duplicated.
    pending_frame = (result.video_frames_produced - result.video_frames_sent - result.video_frames_replaced
                     - result.video_frames_dropped_at_reconnect)
    if not 0 <= pending_frame <= 1:
        f.append(f"video: produced {result.video_frames_produced} != sent {result.video_frames_sent} "
                 f"+ replaced {result.video_frames_replaced} + dropped at a reconnect "
                 f"{result.video_frames_dropped_at_reconnect} + at most one in hand")
    if totals.get("video_frames_invalid"):
        f.append(f"{totals['video_frames_invalid']} video frames the server could not decode")
    if result.simulated_s < minutes * 60:
        f.append(f"only {result.simulated_s:.0f} of {minutes * 60:.0f} simulated seconds ran")
    if result.connections == 0:
        f.append("the conversation never connected")
    if result.malformed_messages:
        f.append(f"{result.malformed_messages} malformed server messages")
    if len(result.rss_mb) >= 3:
        t = result.sample_s
        result.slopes_per_hour = {k: round(_slope_per_hour(t, v), 3) for k, v in
                                  (("rss_mb", result.rss_mb), ("threads", result.threads), ("fds", result.fds))}
        span_h = (t[-1] - t[0]) / 3600
        if result.slopes_per_hour["rss_mb"] * span_h > RSS_SLACK_MB:
            f.append(f"RSS grew {result.slopes_per_hour['rss_mb']:+.2f} MB/h over {span_h * 60:.0f} simulated min")
        if max(result.threads) - min(result.threads) > 1:
            f.append(f"threads varied {min(result.threads)}..{max(result.threads)}")
        if max(result.fds) - min(result.fds) > 1:
            f.append(f"fds varied {min(result.fds)}..{max(result.fds)}")


def main(argv: list[str] | None = None) -> int:
    """``python -m duplex.bench.soak_live``: runs the soak, prints the summary; exit 1 if a check failed."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=60.0, help="simulated minutes (default 60)")
    p.add_argument("--speed", type=float, default=10.0, help="times faster than real time (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the result as JSON here")
    args = p.parse_args(argv)
    if not (args.minutes > 0 and np.isfinite(args.minutes)):
        p.error("--minutes must be a positive number")
    if not 1 <= args.speed <= 30:
        p.error("--speed must be within 1..30")
    result = run_live_soak(args.minutes, args.speed, args.seed, progress=True)
    print(result.summary())
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**asdict(result), "ok": result.ok}, fh, indent=1)
    return 0 if result.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
