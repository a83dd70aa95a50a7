"""Tables, headline ratios, JSON and plots of a set of runs."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["machine_info", "summarize", "markdown", "write_json", "plot_all"]

GIL_SCENARIOS = ("cgil20", "cgil50", "cgil100", "pyloop50", "gc", "server_msgs", "jpeg1", "jpeg10")


def machine_info() -> dict[str, Any]:
    """CPU, cores, kernel, Python and library versions, and the load average now."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    import numpy

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "switch_interval_s": sys.getswitchinterval(),
        "loadavg": load,
    }


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _fmt(x: float, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def summarize(runs: list[dict[str, Any]], period_ms: float, fade_ms: float) -> dict[str, Any]:
    """Pooled figures per implementation and the headline ratios against duplex."""
    impls = list(dict.fromkeys(r["implementation"] for r in runs))
    per_impl: dict[str, Any] = {}
    for name in impls:
        mine = [r for r in runs if r["implementation"] == name]
        interrupts = [x for r in mine for x in r["interrupt_ms"]]
        capture = [x for r in mine for x in r["capture_ms"]]
        gil_runs = [r for r in mine if r["scenario"] in GIL_SCENARIOS]
        per_impl[name] = {
            "interrupts": len(interrupts),
            "interrupts_censored": sum(r["interrupt_censored"] for r in mine),
            "interrupt_median_ms": _median(interrupts),
            "interrupt_p95_ms": float(np.percentile(interrupts, 95)) if interrupts else math.nan,
            "interrupt_max_ms": max(interrupts, default=math.nan),
            "capture_median_ms": _median(capture),
            "capture_max_ms": max(capture, default=math.nan),
            "underruns_total": sum(r["underruns"] for r in mine),
            "underruns_under_load": sum(r["underruns"] for r in gil_runs),
            "underruns_dry_under_load": sum(r["underruns_dry"] for r in gil_runs),
            "load_scenarios": [r["scenario"] for r in gil_runs],
            "cpu_s_per_min_idle": next((r["cpu_s_per_min"] for r in mine if r["scenario"] == "idle"), math.nan),
        }
    headline: dict[str, Any] = {"target_interrupt_ms": period_ms + fade_ms}
    if "duplex" in per_impl:
        d = per_impl["duplex"]
        headline["duplex_interrupt_max_ms"] = d["interrupt_max_ms"]
        headline["duplex_interrupt_within_target"] = bool(d["interrupt_max_ms"] <= period_ms + fade_ms)
        headline["duplex_underruns_under_load"] = d["underruns_under_load"]
        ratios = {}
        for name, other in per_impl.items():
            if name != "duplex" and d["interrupt_median_ms"] > 0:
                ratios[name] = other["interrupt_median_ms"] / d["interrupt_median_ms"]
        headline["interrupt_ratio_vs_duplex"] = ratios
        # duplex's virtual device emits each period as it renders it; the baselines' modelled
        # card holds 2 periods. On a real 2-period card duplex's output would lag by one
        # more period (as long as no callback is late by more than one period): an exact
        # shift of every duplex latency.
        with_card = d["interrupt_median_ms"] + period_ms
        headline["duplex_with_2_period_card_median_ms"] = with_card
        headline["interrupt_ratio_vs_duplex_with_2_period_card"] = {
            name: other["interrupt_median_ms"] / with_card for name, other in per_impl.items() if name != "duplex"
        }
    return {"per_implementation": per_impl, "headline": headline}


def markdown(runs: list[dict[str, Any]], summary: dict[str, Any], meta: dict[str, Any]) -> str:
    """The ``results.md`` text: setup, headline, and a table of scenario x implementation."""
    per = summary["per_implementation"]
    head = summary["headline"]
    lines = ["# duplex vs pure-Python baseline", ""]
    lines += [f"Command: `{meta.get('command', '')}`", ""]
    m = meta.get("machine", {})
    lines += [
        f"Machine: {m.get('cores')} cores, {m.get('cpu')}, Linux {m.get('kernel')}, Python {m.get('python')}, "
        f"numpy {m.get('numpy')}; load average at start {m.get('loadavg')}.",
        f"Runs: {meta.get('seconds')} s measured per run after {meta.get('warmup_s')} s warm-up; "
        f"device {meta.get('rate')} Hz, {meta.get('period_frames')}-frame periods ({head['target_interrupt_ms'] - meta.get('fade_ms', 5):.0f} ms); "
        f"total wall time {meta.get('wall_s', 0):.0f} s.",
        "",
        "## Headline",
        "",
    ]
    if "duplex" in per:
        d = per["duplex"]
        for name, ratio in head.get("interrupt_ratio_vs_duplex", {}).items():
            o = per[name]
            verdict = f"**{ratio:.1f}× lower with duplex**" if ratio >= 1 else f"**{1 / ratio:.1f}× lower with {name}**"
            lines.append(
                f"* interrupt-to-silence, median of all barge-ins ({d['interrupts']} / {o['interrupts']}): duplex "
                f"{_fmt(d['interrupt_median_ms'])} ms vs {name} {_fmt(o['interrupt_median_ms'])} ms = {verdict} "
                f"(p95 {_fmt(d['interrupt_p95_ms'])} vs {_fmt(o['interrupt_p95_ms'])} ms)"
            )
        censored = {n: p["interrupts_censored"] for n, p in per.items() if p["interrupts_censored"]}
        if censored:
            lines.append("* barge-ins whose sound lasted until the next turn (values are lower bounds): " + ", ".join(
                f"{n} {c}" for n, c in censored.items()))
        card = head["duplex_with_2_period_card_median_ms"]
        lines.append(
            f"* if duplex also had the baselines' 2-period card buffer (+1 period = {card - d['interrupt_median_ms']:.0f} ms "
            f"on each of its figures): duplex {_fmt(card)} ms; ratios " + ", ".join(
                f"{n} {r:.1f}×" for n, r in head["interrupt_ratio_vs_duplex_with_2_period_card"].items())
        )
        verdict = "within" if head["duplex_interrupt_within_target"] else "OVER"
        lines.append(
            f"* duplex worst interrupt-to-silence {_fmt(d['interrupt_max_ms'])} ms: {verdict} the target of one "
            f"period + fade = {head['target_interrupt_ms']:.0f} ms"
        )
        loads = ", ".join(d["load_scenarios"]) or "none run"
        lines.append(f"* underruns under load ({loads}), total (of which the client's buffer ran dry because the "
                     f"Python producer was late): duplex **{d['underruns_under_load']} ({d['underruns_dry_under_load']})**; "
                     + "; ".join(f"{n} {per[n]['underruns_under_load']} ({per[n]['underruns_dry_under_load']})"
                                 for n in per if n != "duplex"))
        worst = max((r["jitter_ms"].get("max") or 0.0 for r in runs if r["implementation"] == "duplex"), default=0.0)
        lines.append(
            f"* duplex's device thread: worst callback-interval jitter {worst:.2f} ms over all scenarios "
            f"(a 2-period card buffer tolerates {head['target_interrupt_ms'] - meta.get('fade_ms', 5):.0f} ms)"
        )
    lines += ["", "## Per scenario", ""]
    lines += [
        "| scenario | implementation | underruns/min (dry) | silence ms/min | jitter p99 / max ms | interrupt→silence ms median (max) | capture→chunk ms median (max) | clicks lost | CPU s/min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        intr = r["interrupt_ms"]
        cap = r["capture_ms"]
        lines.append(
            f"| {r['scenario']} | {r['implementation']} | {r['underruns_per_min']:.0f} ({r['underruns_dry'] * 60 / r['window_s']:.0f}) | "
            f"{r['silence_ms_per_min']:.{0 if r['silence_ms_per_min'] >= 10 or r['silence_ms_per_min'] == 0 else 1}f} | "
            f"{_fmt(r['jitter_ms'].get('p99'), 2)} / {_fmt(r['jitter_ms'].get('max'), 1)} | {_fmt(_median(intr))} ({_fmt(max(intr, default=math.nan))}) | "
            f"{_fmt(_median(cap))} ({_fmt(max(cap, default=math.nan))}) | {r['clicks_lost']} | {r['cpu_s_per_min']:.2f} |"
        )
    lines += [
        "",
        "Definitions: underruns are audible starvation (the card played silence in the middle of a turn, or the",
        "client's buffer ran dry mid-turn; \"dry\" counts the latter, i.e. the Python code feeding the audio was",
        "late rather than the device path); jitter is |interval − period| between consecutive hand-overs of a period to the card",
        "(duplex: its engine histogram, whole run); interrupt→silence runs from the `interrupt()` call to the end of the",
        "last output frame above −60 dBFS (0 = the output was already silent, e.g. starved by an underrun);",
        "capture→chunk runs from the device handing over the period with a click to `read()` returning the chunk",
        "holding it; clicks lost = dropped by a capture overrun; CPU is process CPU minus the load thread's, per",
        "minute of run (it includes the driving client: feeder, reader; the baselines' card is arithmetic and",
        "costs nothing, duplex's virtual device is real threads doing real resampling and copying).",
        "",
        "Devices: duplex runs on its own VirtualDevice (a Rust thread renders period k at start + k·P and the output is",
        "what it rendered, so no card buffer and no GIL); the baselines run on `duplex.bench.virtual_clock`, a card",
        "modelled by timestamps: it plays frame f at t0 + f/rate, holds 2 (or 4) periods, and inserts silence when",
        "Python hands a period over after the card needed it.",
    ]
    titles = {"resampler": "Resampler (duplex.bench.resampler)", "scale": "Scale (duplex.bench.scale)",
              "echo": "Echo cancellation (duplex.bench.echo_report, plot echo_erle.png)"}
    for key, title in titles.items():
        extra = meta.get("extras", {}).get(key)
        if not isinstance(extra, dict):
            continue
        if extra.get("markdown"):
            lines += ["", f"## {title}", "", extra["markdown"].strip()]
        elif extra.get("error"):
            lines += ["", f"## {title}", "", f"Failed: {extra['error']}"]
    return "\n".join(lines) + "\n"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Writes ``payload`` as JSON (NaN as null)."""

    def clean(x: Any) -> Any:
        """NaN and infinities to None, numpy scalars to Python numbers, recursively."""
        if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.floating, np.integer)):
            return clean(x.item())
        return x

    path.write_text(json.dumps(clean(payload), indent=1, default=str))


def plot_all(runs: list[dict[str, Any]], out: Path, period_ms: float, fade_ms: float) -> list[Path]:
    """Writes jitter.png, underruns.png, interrupt.png and capture.png; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from . import plots

    return [
        plots.jitter(runs, out / "jitter.png", period_ms),
        plots.underruns(runs, out / "underruns.png"),
        plots.interrupts(runs, out / "interrupt.png", period_ms + fade_ms),
        plots.capture(runs, out / "capture.png"),
    ]
