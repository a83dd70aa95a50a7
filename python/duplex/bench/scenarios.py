"""Scenarios and the run loop: one implementation, one background load, one measurement.

A run drives an implementation (duplex or a baseline, all behind the same interface) the
way a Live client does, while a load keeps the interpreter busy:

* a reader thread calls ``read()`` continuously and notes when each chunk returned and its
  peak; the microphone signal carries a 4 ms click every 0.5 s (at a random offset in its
  chunk), so capture-to-chunk latency is measured click by click (after the window the
  reader is given up to 2 s to catch up, so late clicks are measured, not dropped);
* the main thread plays model turns: 24 kHz chunks of 40-240 ms sent 25 times a second
  (faster than real time, as the service does), and barges in 0.25-0.5 s after the turn
  started, then waits 0.5 s before the next turn. Interrupt-to-silence latency is measured
  on the device's output signal;
* counters (underruns, silence) are differenced over the measurement window, and CPU is the
  process's CPU time over the window minus the load thread's own.

Each run is separate (its own engine or baseline, its own load), so CPU is per
implementation.
"""

from __future__ import annotations

import math
import threading
import zlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import loads as L
from .adapter import DuplexAdapter
from .baseline import CallbackBaseline, QueueBaseline
from .metrics import interrupt_latency_ms, interval_jitter_ms, loud_groups, match_clicks, percentiles

__all__ = [
    "IMPLEMENTATIONS",
    "SCENARIOS",
    "DEFAULT_SCENARIOS",
    "QUICK_SCENARIOS",
    "RunConfig",
    "make_implementation",
    "run_one",
]

#: Scenario name -> (description, load factory or None for idle).
SCENARIOS: dict[str, tuple[str, Callable[[], L.Load] | None]] = {
    "idle": ("no load", None),
    "cgil20": ("C call holding the GIL 20 ms of every 100 ms", lambda: L.CGilLoad(20)),
    "cgil50": ("C call holding the GIL 50 ms of every 100 ms", lambda: L.CGilLoad(50)),
    "cgil100": ("C call holding the GIL 100 ms of every 100 ms", lambda: L.CGilLoad(100)),
    "pyloop50": ("pure-Python loop 50 ms of every 100 ms (GIL switches every 5 ms)", lambda: L.PyLoopLoad(50)),
    "server_msgs": ("25 server messages/s: JSON + base64 audio (google-genai model)", lambda: L.ServerMessageLoad(25)),
    "jpeg1": ("OpenCV JPEG of 768x768 frames at 1 FPS", lambda: L.JpegLoad(1)),
    "jpeg10": ("OpenCV JPEG of 768x768 frames at 10 FPS", lambda: L.JpegLoad(10)),
    "gc": ("cyclic garbage over a 200k-cycle live heap, gc enabled", lambda: L.GcLoad()),
}
#: What ``duplex bench`` runs by default (fits in under two minutes with 4 implementations).
DEFAULT_SCENARIOS = ["idle", "cgil20", "cgil50", "cgil100", "pyloop50", "server_msgs", "jpeg10", "gc"]
#: What ``--quick`` runs.
QUICK_SCENARIOS = ["idle", "cgil50"]

#: Implementation name -> factory(input_signal, rate, period_frames).
IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {
    "duplex": lambda **kw: DuplexAdapter(**kw),
    "cookbook": lambda **kw: QueueBaseline(buffer_periods=2, **kw),
    "callback": lambda **kw: CallbackBaseline(buffer_periods=2, **kw),
    "callback-4p": lambda **kw: CallbackBaseline(buffer_periods=4, **kw),
    "cookbook-4p": lambda **kw: QueueBaseline(buffer_periods=4, **kw),
}
#: Implementations run by default.
DEFAULT_IMPLEMENTATIONS = ["duplex", "cookbook", "callback", "callback-4p"]
#: What each implementation is, for the report.
IMPLEMENTATION_NOTES = {
    "duplex": "duplex.AudioEngine on its VirtualDevice (Rust device thread, 200 ms prebuffer, 5 ms fade)",
    "cookbook": "cookbook client: queue.Queue of chunks, blocking writes, 2-period card buffer (latency='low')",
    "callback": "Python callback over a collections.deque, 2-period card buffer (latency='low')",
    "callback-4p": "Python callback over a collections.deque, 4-period card buffer (latency='high', 40 ms)",
    "cookbook-4p": "cookbook client with a 4-period card buffer (latency='high', 40 ms)",
}


def make_implementation(name: str, **kwargs: Any) -> Any:
    """Builds an implementation by name (see :data:`IMPLEMENTATIONS`)."""
    try:
        return IMPLEMENTATIONS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS)}") from None


@dataclass
class RunConfig:
    """Durations and signal parameters of one run (seconds unless named otherwise)."""

    seconds: float = 2.5
    warmup_s: float = 0.3
    rate: int = 48_000
    period_frames: int = 480
    click_every_s: float = 0.5
    click_ms: float = 4.0
    click_level: float = 0.5
    message_every_s: float = 0.04
    chunk_ms_choices: tuple[int, ...] = tuple(range(40, 241, 20))
    turn_audio_s: float = 3.0
    interrupt_after_s: tuple[float, float] = (0.25, 0.5)
    gap_after_interrupt_s: float = 0.3
    seed: int = 1234

    @classmethod
    def quick(cls, seconds: float = 1.0) -> "RunConfig":
        """A short smoke-test configuration (CI)."""
        return cls(seconds=seconds, warmup_s=0.15, interrupt_after_s=(0.15, 0.25), gap_after_interrupt_s=0.3)

    def seed_for(self, scenario: str) -> int:
        """The random seed of a scenario: the same for every implementation, so they all
        get the same turns, chunk sizes, barge-in times and clicks."""
        return self.seed + zlib.crc32(scenario.encode())


@dataclass
class RunResult:
    """Everything measured in one run (JSON-friendly via :func:`dataclasses.asdict`)."""

    implementation: str
    scenario: str
    window_s: float
    underruns: int
    underruns_dry: int
    underruns_per_min: float
    silence_ms: float
    silence_ms_per_min: float
    xruns: int
    jitter_ms: dict[str, float]
    interrupt_ms: list[float]
    interrupt_censored: int
    capture_ms: list[float]
    clicks_lost: int
    capture_overflow_frames: int
    cpu_s_per_min: float
    cpu_includes: str
    load: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    jitter_samples_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON)."""
        return asdict(self)


def _input_signal(cfg: RunConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Silence with a click every ``click_every_s``, each inside one device period (so a
    click is either captured whole or lost whole) at a random place in its chunk."""
    total = int((cfg.warmup_s + cfg.seconds + 3.0) * cfg.rate)
    signal = np.zeros(total, dtype=np.float32)
    click_frames = []
    p = cfg.period_frames
    width = int(cfg.click_ms * cfg.rate / 1000)
    t = cfg.warmup_s + 0.1
    while t < cfg.warmup_s + cfg.seconds - 0.2:
        period = int(t * cfg.rate) // p + int(rng.integers(0, 2))
        frame = period * p + int(rng.integers(0, max(1, p - width)))
        signal[frame : frame + width] = cfg.click_level
        click_frames.append(frame)
        t += cfg.click_every_s
    return signal, click_frames


def _turn_chunks(cfg: RunConfig, rng: np.random.Generator) -> list[bytes]:
    n = int(cfg.turn_audio_s * 24_000)
    t = np.arange(n) / 24_000.0
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t + 1.0) + 0.05
    pcm = np.round(tone * 32767).astype("<i2")
    chunks, pos = [], 0
    while pos < n:
        size = int(rng.choice(cfg.chunk_ms_choices)) * 24
        chunks.append(pcm[pos : pos + size].tobytes())
        pos += size
    return chunks


class _Reader(threading.Thread):
    """Calls ``read()`` in a loop and notes when each chunk returned and its peak."""

    def __init__(self, impl: Any) -> None:
        super().__init__(name="bench-reader", daemon=True)
        self.impl = impl
        self.times: list[float] = []
        self.peaks: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Reads until :attr:`stop_event` is set."""
        while not self.stop_event.is_set():
            chunk = self.impl.read(0.1)
            if chunk is None:
                continue
            t = time.perf_counter()
            self.times.append(t)
            self.peaks.append(float(np.abs(np.frombuffer(chunk, "<i2")).max()) / 32768.0)


def _sleep_until(t: float) -> None:
    rest = t - time.perf_counter()
    if rest > 0:
        time.sleep(rest)


def _drive_turns(
    impl: Any, cfg: RunConfig, rng: np.random.Generator, until: float
) -> list[tuple[float, float, int]]:
    """Plays turns and barges in.

    Returns one ``(t_interrupt, t_next_turn, window_end_frame)`` triple per turn: the
    interrupted turn's audio is looked for up to the output frames the implementation had
    committed just before the next turn's first chunk was played (or at the end of the
    run), so the next turn can never be mistaken for the tail of the interrupted one.
    """
    interrupts: list[float] = []
    ends: list[tuple[float, int]] = []
    while True:
        after = rng.uniform(*cfg.interrupt_after_s)
        if time.perf_counter() + after + cfg.gap_after_interrupt_s > until:
            break
        chunks = _turn_chunks(cfg, rng)
        if interrupts:
            ends.append((time.perf_counter(), impl.committed_frames()))
        t_first = time.perf_counter()
        t_interrupt = t_first + after
        for i, chunk in enumerate(chunks):
            if time.perf_counter() >= t_interrupt:
                break
            impl.play(chunk)
            _sleep_until(min(t_first + (i + 1) * cfg.message_every_s, t_interrupt))
        _sleep_until(t_interrupt)
        t_int = time.perf_counter()
        impl.interrupt()
        interrupts.append(t_int)
        _sleep_until(t_int + cfg.gap_after_interrupt_s)
    _sleep_until(until)
    if interrupts:
        ends.append((time.perf_counter(), impl.committed_frames()))
    return [(t_int, t_next, frame) for t_int, (t_next, frame) in zip(interrupts, ends)]


def run_one(impl_name: str, scenario: str, cfg: RunConfig | None = None) -> RunResult:
    """Runs one implementation under one scenario and measures it (see the module doc)."""
    cfg = cfg or RunConfig()
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(cfg.seed_for(scenario))
    signal, click_frames = _input_signal(cfg, rng)
    impl = make_implementation(impl_name, rate=cfg.rate, period_frames=cfg.period_frames, input_signal=signal)
    factory = SCENARIOS[scenario][1]
    load = factory() if factory else None
    if load is not None:
        load.prepare()
    threshold = cfg.click_level / 2
    impl.start()
    reader = _Reader(impl)
    reader.start()
    try:
        time.sleep(cfg.warmup_s)
        stats0 = impl.stats()
        cpu0, t_start = time.process_time(), time.perf_counter()
        if load is not None:
            load.start()
        windows = _drive_turns(impl, cfg, rng, t_start + cfg.seconds)
        if load is not None:
            load.stop()
        t_end, cpu1 = time.perf_counter(), time.process_time()
        stats1 = impl.stats()
        # Let the reader catch up with the clicks still in flight (the devices keep running).
        deadline = time.perf_counter() + 2.0
        while time.perf_counter() < deadline:
            survived = [not impl.input_frame_lost(f) for f in click_frames]
            if len(loud_groups(list(reader.peaks), threshold)) >= sum(survived):
                break
            time.sleep(0.02)
        survived = [not impl.input_frame_lost(f) for f in click_frames]
    finally:
        if load is not None:
            load.stop()
            load.cleanup()
        reader.stop_event.set()
        reader.join(timeout=2.0)
        impl.stop()
    window = t_end - t_start
    per_min = 60.0 / window
    period_s = cfg.period_frames / cfg.rate

    recording = impl.recording()
    interrupts, censored = [], 0
    for t_int, t_next, end_frame in windows:
        ms, cut = interrupt_latency_ms(recording, impl.device_frame_at(t_int), end_frame, cfg.rate,
                                       next_turn_frame=impl.device_frame_at(t_next))
        interrupts.append(round(ms, 3))
        censored += int(cut)

    enter = [impl.input_frame_time(f) for f in click_frames]
    clicks = match_clicks(enter, survived, reader.times, reader.peaks, threshold)
    # Latencies of the clicks that entered the device inside the measurement window.
    in_window = [i for i, t in enumerate(enter) if t_start <= t <= t_end]
    capture_ms = [clicks.latencies_ms[i] for i in in_window if clicks.latencies_ms[i] is not None]
    clicks_lost = sum(1 for i in in_window if not survived[i])

    runs = [r[(r >= t_start) & (r <= t_end)] for r in impl.handover_runs()]
    jitter_values = interval_jitter_ms(runs, period_s)
    if jitter_values.size:
        jitter = percentiles(jitter_values)
    else:  # duplex: the engine's own histogram (whole run, warm-up included)
        jitter = {"p50": math.nan, "p99": stats1.get("jitter_p99_ms", math.nan), "max": stats1.get("jitter_max_ms", math.nan)}

    load_cpu = load.cpu_s if load is not None else 0.0
    underruns = stats1["underruns"] - stats0["underruns"]
    silence = stats1["underrun_silence_ms"] - stats0["underrun_silence_ms"]
    extra = {"clicks_unread": clicks.unread, "clicks_mismatched": clicks.mismatched,
             "t0_after_start_call_ms": round(getattr(impl, "t0_after_start_call_s", 0.0) * 1e3, 3)}
    if hasattr(impl, "clock_check_ms"):
        extra["clock_check_ms"] = [round(x, 3) for x in impl.clock_check_ms()]
    if "callback_p99_us" in stats1:
        extra["callback_p99_us"] = stats1["callback_p99_us"]
    return RunResult(
        implementation=impl_name,
        scenario=scenario,
        window_s=round(window, 3),
        underruns=int(underruns),
        underruns_dry=int(stats1["underruns_dry"] - stats0["underruns_dry"]),
        underruns_per_min=round(underruns * per_min, 2),
        silence_ms=round(silence, 2),
        silence_ms_per_min=round(silence * per_min, 2),
        xruns=int(stats1["xruns"] - stats0["xruns"]),
        jitter_ms={k: round(v, 3) for k, v in jitter.items()},
        interrupt_ms=interrupts,
        interrupt_censored=censored,
        capture_ms=[round(x, 2) for x in capture_ms],
        clicks_lost=clicks_lost,
        capture_overflow_frames=int(stats1["capture_overflow_frames"] - stats0["capture_overflow_frames"]),
        cpu_s_per_min=round((cpu1 - cpu0 - load_cpu) * per_min, 3),
        cpu_includes="process CPU over the window minus the load thread's: the implementation plus the driving client",
        load=load.summary() if load is not None else {},
        extra=extra,
        jitter_samples_ms=[round(float(x), 4) for x in jitter_values],
    )
