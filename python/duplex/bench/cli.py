"""``duplex bench``: duplex against pure-Python Live clients, with a report and plots.

Wire it into an :mod:`argparse` sub-command with :func:`add_arguments` and :func:`run`, or
run it directly: ``python -m duplex.bench.cli --quick``.

By default it runs 8 scenarios (idle, three GIL-holding C-call loads, a pure-Python loop,
server-message decoding, 10 FPS JPEG encoding, garbage-collector pressure) for 4
implementations (duplex, the cookbook client, a Python callback with a 2- and a 4-period
card buffer), 2.5 s measured per run after 0.3 s of warm-up, then the resampler and scale
benchmarks and the echo cancellation section (``--skip-extra`` leaves them out; ``--echo`` runs
only the echo section). ``--quick`` runs 2 scenarios for 1 s each.
It prints its estimate first (:func:`estimate_s`, from measured figures) and its progress
after every run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from . import report
from .loads import calibrate_sum_range
from .scenarios import (
    DEFAULT_IMPLEMENTATIONS,
    DEFAULT_SCENARIOS,
    IMPLEMENTATION_NOTES,
    IMPLEMENTATIONS,
    QUICK_SCENARIOS,
    SCENARIOS,
    RunConfig,
    run_one,
)

__all__ = ["add_arguments", "run", "main"]

FADE_MS = 5.0


def _names(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out += [x for x in v.replace(",", " ").split() if x]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``duplex bench`` options to ``parser``."""
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {', '.join(QUICK_SCENARIOS)} for 1 s each, and the extras quick (about a minute)")
    parser.add_argument("--out", help="folder for results.md, results.json and the PNGs "
                        "(default: duplex-bench/<timestamp>)")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME",
                        help=f"scenarios to run (default: {' '.join(DEFAULT_SCENARIOS)}; all: {' '.join(SCENARIOS)})")
    parser.add_argument("--implementations", nargs="+", metavar="NAME",
                        help=f"implementations (default: {' '.join(DEFAULT_IMPLEMENTATIONS)}; all: {' '.join(IMPLEMENTATIONS)})")
    parser.add_argument("--seconds", type=float, metavar="N",
                        help="measured seconds per run (default 2.5, quick 1.0)")
    parser.add_argument("--skip-extra", action="store_true",
                        help="do not run the resampler, scale and echo benchmarks")
    parser.add_argument("--echo", action="store_true",
                        help="run only the echo cancellation section (sonora, aec3 and none side by side: "
                        "ERLE over time, double talk, drift, cost, added latency); with --quick, 6 s per case")
    parser.add_argument("--list", action="store_true", help="list scenarios and implementations, then exit")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="run only the soaks, MINUTES of simulated conversation each, faster than real "
                        "time: the engine alone (dense turns and barge-ins), then the whole session (a Live "
                        "conversation through the SDK and the emulator with barge-ins, video and a goAway, "
                        "1011 or dropped connection on every connection; an hour takes about 6.5 min at "
                        "10x); checks that memory, threads and file descriptors stay flat and every frame "
                        "is accounted (exit 1 if not)")
    parser.add_argument("--soak-speed", type=float, default=10.0, metavar="X",
                        help="speed of the whole-session soak, times real time (1..30, default 10)")
    parser.add_argument("--devices", action="store_true",
                        help="run only the real-sound-server benchmark (duplex.bench.devicegaps): gaps per minute "
                        "in full duplex heard by an independent recorder of a PulseAudio null sink, under four "
                        "loads, barge-in and capture latency, against PortAudio baselines (about 10 minutes; "
                        "--quick about 3.5; --seconds sets the tone per cell)")
    from .devicegaps import add_arguments as _add_devices

    _add_devices(parser, prefix="devices-")


#: Wall time of the extra benchmarks in quick mode, measured with ``duplex bench --quick`` on
#: the 2-core development machine while tests ran (resampler 4.6 s with scipy's import,
#: scale 4.8-6.8 s; before the echo section, the whole command took 30.7 s against an
#: estimate of 29 s). The resampler took 13-60 s before its passband fit became one DFT;
#: the full versions were not timed.
#: The echo section: 9 engine runs of 6 s (quick) as fast as the device goes, measured 20-30 s.
EXTRA_QUICK_S = {"resampler": 5.0, "scale": 5.0, "echo": 30.0}
#: Per headline run, on top of warm-up and the measured seconds (measured: 8 quick runs of
#: 0.3 + 1.0 s took 10 s), and for writing the report and the plots.
RUN_OVERHEAD_S = 0.1
REPORT_S = 8.0


def estimate_s(n_runs: int, cfg: RunConfig, quick: bool, extras: bool) -> float:
    """How long the headline runs (and, in quick mode, the extras) take, from the figures
    measured above; the full extras are not included (they were not timed)."""
    total = n_runs * (cfg.warmup_s + cfg.seconds + RUN_OVERHEAD_S) + REPORT_S
    if extras and quick:
        total += sum(EXTRA_QUICK_S.values())
    return total


EXTRA_MODULES = {"echo": "echo_report"}


def _run_echo(args: argparse.Namespace) -> int:
    """``duplex bench --echo``: only the echo section, with its JSON, markdown and plot."""
    from . import echo_report

    out = Path(args.out) if args.out else Path("duplex-bench") / datetime.now().strftime("echo-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"duplex bench --echo: writing to {out}; about {EXTRA_QUICK_S['echo'] * (1 if args.quick else 2.5):.0f} s",
          flush=True)
    result = echo_report.run(quick=bool(args.quick), progress=True)
    report.write_json(out / "echo.json", result)
    (out / "echo.md").write_text(result["markdown"])
    png = echo_report.plot(result, out / "echo_erle.png")
    print(result["markdown"])
    print(f"wrote {out / 'echo.json'}, {out / 'echo.md'}, {png}")
    return 0


def _run_extras(quick: bool) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for key in ("resampler", "scale", "echo"):
        try:
            module = __import__(f"{__package__}.{EXTRA_MODULES.get(key, key)}", fromlist=["run"])
        except ImportError:
            continue
        guess = f"about {EXTRA_QUICK_S[key]:.0f} s" if quick else f"longer than the {EXTRA_QUICK_S[key]:.0f} s of --quick"
        print(f"  {key} benchmark ({guess}) ...", flush=True)
        t = time.perf_counter()
        try:
            result = module.run(quick=quick)
            extras[key] = result if isinstance(result, dict) else {"result": result}
        except Exception as exc:  # noqa: BLE001 - a failing extra must not lose the main results
            extras[key] = {"error": f"{type(exc).__name__}: {exc}"}
        extras[key]["wall_s"] = round(time.perf_counter() - t, 1)
        error = f"  ERROR {extras[key]['error']}" if "error" in extras[key] else ""
        print(f"  {key:<12} {extras[key]['wall_s']:.1f} s{error}")
    return extras


def _line(r: dict[str, Any]) -> str:
    intr = r["interrupt_ms"]
    med = sorted(intr)[len(intr) // 2] if intr else float("nan")
    p99 = r["jitter_ms"].get("p99")
    p99 = float("nan") if p99 is None else p99
    return (f"  {r['scenario']:<12} {r['implementation']:<12} underruns {r['underruns']:>3} in {r['window_s']:.1f} s  "
            f"jitter p99 {p99:>6.2f} ms  "
            f"interrupt {med:>6.1f} ms  CPU {r['cpu_s_per_min']:.2f} s/min")


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark described by ``args`` and writes the report. Returns 0."""
    if getattr(args, "list", False):
        for name, (desc, _) in SCENARIOS.items():
            print(f"scenario        {name:<12} {desc}")
        for name in IMPLEMENTATIONS:
            print(f"implementation  {name:<12} {IMPLEMENTATION_NOTES.get(name, '')}")
        return 0
    if getattr(args, "soak", None) is not None:
        from .soak import run_soak

        if not (args.soak > 0 and args.soak < 1e6):
            raise SystemExit("duplex bench: --soak takes a number of simulated minutes > 0, e.g. 60")
        speed = getattr(args, "soak_speed", 10.0)
        if not 1 <= speed <= 30:
            raise SystemExit("duplex bench: --soak-speed takes 1..30 (times real time)")
        result = run_soak(args.soak, progress=True)
        print(result.summary())
        from .soak_live import run_live_soak

        live = run_live_soak(args.soak, speed, progress=True)
        print(live.summary())
        return 0 if result.ok and live.ok else 1
    if getattr(args, "devices", False):
        from .devicegaps import run_cli

        return run_cli(args, prefix="devices_")
    if getattr(args, "echo", False):
        return _run_echo(args)
    quick = bool(args.quick)
    scenarios = _names(args.scenarios) or (QUICK_SCENARIOS if quick else DEFAULT_SCENARIOS)
    impls = _names(getattr(args, "implementations", None)) or DEFAULT_IMPLEMENTATIONS
    for name in scenarios:
        if name not in SCENARIOS:
            raise InvalidInputError(f"--scenarios: unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in impls:
        if name not in IMPLEMENTATIONS:
            raise InvalidInputError(
                f"--implementations: unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS)}")
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        raise InvalidInputError(f"--seconds: must be a positive number, got {args.seconds}")
    cfg = RunConfig.quick(args.seconds or 1.0) if quick else RunConfig(seconds=args.seconds or 2.5)
    out = Path(args.out) if args.out else Path("duplex-bench") / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    print(f"duplex bench: writing to {out}")
    machine = report.machine_info()
    began = time.perf_counter()
    n_runs = len(scenarios) * len(impls)
    extras_note = ("" if args.skip_extra else
                   ", with the resampler and scale benchmarks" if quick else
                   ", plus the resampler and scale benchmarks (over a minute more)")
    print(f"  {len(scenarios)} scenarios x {len(impls)} implementations, {cfg.seconds:g} s measured each: "
          f"about {estimate_s(n_runs, cfg, quick, not args.skip_extra):.0f} s{extras_note} "
          "(measured on 2 cores; longer on a busy machine)", flush=True)
    ns = calibrate_sum_range()
    print(f"  calibrated: sum(range) {ns:.1f} ns/element", flush=True)
    runs: list[dict[str, Any]] = []
    for k, scenario in enumerate(scenarios):
        order = impls if k % 2 == 0 else list(reversed(impls))
        for name in order:
            result = run_one(name, scenario, cfg).as_dict()
            runs.append(result)
            spent = time.perf_counter() - began
            left = spent / len(runs) * (n_runs - len(runs))
            print(f"[{len(runs)}/{n_runs}]" + _line(result)[1:] + f"  ({left:.0f} s of runs left)", flush=True)
    order_index = {n: i for i, n in enumerate(impls)}
    runs.sort(key=lambda r: (scenarios.index(r["scenario"]), order_index[r["implementation"]]))
    bench_wall = time.perf_counter() - began
    extras = {} if args.skip_extra else _run_extras(quick)
    period_ms = 1000.0 * cfg.period_frames / cfg.rate
    summary = report.summarize(runs, period_ms, FADE_MS)
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = [a for a in sys.argv[1:] if a != "bench"]
    command = "duplex bench " + " ".join(shlex.quote(a) for a in argv)
    meta = {
        "command": command.strip(),
        "machine": machine,
        "loadavg_end": report.machine_info()["loadavg"],
        "seconds": cfg.seconds,
        "warmup_s": cfg.warmup_s,
        "rate": cfg.rate,
        "period_frames": cfg.period_frames,
        "fade_ms": FADE_MS,
        "wall_s": bench_wall,
        "config": asdict(cfg),
        "scenarios": {s: SCENARIOS[s][0] for s in scenarios},
        "implementations": {n: IMPLEMENTATION_NOTES.get(n, "") for n in impls},
        "extras": extras,
    }
    (out / "results.md").write_text(report.markdown(runs, summary, meta))
    report.write_json(out / "results.json", {"meta": meta, "summary": summary, "runs": runs})
    print("  plotting ...", flush=True)
    pngs = report.plot_all(runs, out, period_ms, FADE_MS)
    if isinstance(extras.get("echo"), dict) and extras["echo"].get("rows"):
        from .echo_report import plot as plot_echo

        pngs.append(plot_echo(extras["echo"], out / "echo_erle.png"))
    print(f"  headline scenarios took {bench_wall:.0f} s")
    for line in report.markdown(runs, summary, meta).splitlines():
        if line.startswith("* "):
            print("  " + line[2:].replace("**", ""))
    print(f"wrote {out / 'results.md'}, {out / 'results.json'}, " + ", ".join(p.name for p in pngs))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m duplex.bench.cli``."""
    parser = argparse.ArgumentParser(prog="duplex bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from ..errors import DuplexError
    from ..extras import require

    try:
        require("duplex bench", "bench")
        return run(args)
    except DuplexError as exc:
        print(f"duplex bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
