"""Tables and the plot for :mod:`duplex.bench.devicegaps` (rows in, markdown and a PNG out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["markdown", "plot", "cell_values"]

LOADS = ("idle", "busy", "gil", "gil+busy")
LOAD_NOTES = {"idle": "idle", "busy": "2 spinning processes", "gil": "GIL 50/100 ms", "gil+busy": "GIL + spinners"}


def _ok(rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("task") == task and "error" not in r]


def _order(rows: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["subject"] not in seen:
            seen.append(r["subject"])
    return seen


def _own_count(r: dict[str, Any]) -> str:
    c = r.get("counters") or {}
    if "underruns" in c:
        dev = next((c[k] for k in ("output_device_underruns", "device_underruns", "output_xruns") if k in c), None)
        s = f"ring {c['underruns']}"
        s += f", device {dev}" if dev is not None else ""
        return s + f", errors {c.get('device_errors', 0)}"
    return f"underflow {c.get('output_underflow')}"


def cell_values(rows: list[dict[str, Any]], subject: str, load: str) -> list[float]:
    """Heard gaps per minute of every repetition of one (subject, load) cell."""
    return [float(r["gaps_per_min"]) for r in _ok(rows, "gaps")
            if r["subject"] == subject and r["load"] == load and r.get("gaps_per_min") is not None]


def _fmt(v: Any) -> str:
    return "—" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def markdown(res: dict[str, Any]) -> str:
    """The report: gaps per minute (heard, and counters vs heard), barge-in, capture latency."""
    rows, meta = res["rows"], res["meta"]
    gaps = _ok(rows, "gaps")
    loads = [x for x in LOADS if any(r["load"] == x for r in gaps)]
    out = [f"Server: {meta['server']}, sink latency {meta.get('sink_latency_us')} µs at start, "
           f"recorder latency {meta.get('recorder_latency_ms', 10):g} ms; "
           f"{meta['seconds']:g} s of tone per gap cell, {meta['repeat']} repetition(s), "
           f"{meta['interrupts']} interrupts and {meta['clicks']} clicks per barge-in/capture cell; "
           f"load average {meta['loadavg_start'][0]:.2f} at start, {meta['loadavg_end'][0]:.2f} at end "
           f"({meta['cpus']} CPUs); {meta['wall_s']:.0f} s in all.", ""]
    out += ["**Gaps per minute heard by the recorder** (full duplex; one figure per repetition):", "",
            "| implementation | " + " | ".join(LOAD_NOTES[x] for x in loads) + " |",
            "| --- |" + " --- |" * len(loads)]
    for s in _order(gaps):
        cells = [", ".join(_fmt(v) for v in cell_values(rows, s, x)) or "—" for x in loads]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    out += ["", "**Counters vs heard** (gaps heard; breaks: every sample where the tone stopped being a sine, "
            "gaps included; what the implementation's own counters said, per run):", "",
            "| implementation | load | heard gaps (ms lost) | breaks | own counters | load avg |",
            "| --- | --- | --- | --- | --- | --- |"]
    for s in _order(gaps):
        for x in loads:
            for r in (r for r in gaps if r["subject"] == s and r["load"] == x):
                out.append(f"| {s} | {x} | {_fmt(r.get('gaps'))} ({_fmt(r.get('gap_ms'))}) | {_fmt(r.get('breaks'))} "
                           f"| {_own_count(r)} | {r['loadavg_start']:.1f} |")
    b = _ok(rows, "bargein")
    if b:
        out += ["", "**Barge-in**: `interrupt()` to the last sample >= -40 dBFS at the monitor (ms), and the same "
                "minus the click's round trip:", "",
                "| implementation | round trip | raw median | raw p95 | minus rt median | minus rt p95 | n | period |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in b:
            c = r.get("counters") or {}
            per = f"{c['period_frames']} fr" if "period_frames" in c else f"out {c.get('out_latency_ms')} ms"
            out.append(f"| {r['subject']} | {_fmt(r.get('roundtrip_ms'))} | {_fmt(r.get('raw_median_ms'))} "
                       f"| {_fmt(r.get('raw_p95_ms'))} | {_fmt(r.get('minus_rt_median_ms'))} "
                       f"| {_fmt(r.get('minus_rt_p95_ms'))} | {r['n']} (+{r['censored']} censored) | {per} |")
    c_rows = _ok(rows, "capture")
    if c_rows:
        out += ["", "**Capture latency**: click onset at the monitor to its 16 kHz chunk in Python (ms):", "",
                "| implementation | median | p95 | clicks | recorder clock spread |", "| --- | --- | --- | --- | --- |"]
        for r in c_rows:
            out.append(f"| {r['subject']} | {_fmt(r.get('latency_median_ms'))} | {_fmt(r.get('latency_p95_ms'))} "
                       f"| {r['n']} of {r['clicks_at_monitor']} | {_fmt(r.get('clock_spread_ms'))} ms |")
    errs = [r for r in rows if "error" in r]
    if errs:
        out += ["", "Errors: " + "; ".join(f"{r['task']} {r['subject']} {r['load']}: {r['error']}" for r in errs)]
    return "\n".join(out) + "\n"


def plot(res: dict[str, Any], path: Path) -> Path | None:
    """Three panels: heard gaps per minute per load, barge-in, capture latency. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import numpy as np

    rows = res["rows"]
    gaps = _ok(rows, "gaps")
    subjects = _order(gaps)
    loads = [x for x in LOADS if any(r["load"] == x for r in gaps)]
    if not gaps:
        return None  # the plot is about the gap cells; barge-in/capture alone are in the tables
    fig = plt.figure(figsize=(11, 8.5), dpi=80)
    ax = fig.add_subplot(2, 1, 1)
    width = 0.8 / max(len(subjects), 1)
    colors = plt.get_cmap("tab10").colors
    for k, s in enumerate(subjects):
        vals = [cell_values(rows, s, x) for x in loads]
        mean = [float(np.mean(v)) if v else 0.0 for v in vals]
        xs = np.arange(len(loads)) + (k - (len(subjects) - 1) / 2) * width
        ax.bar(xs, mean, width, label=s, color=colors[k % 10])
        for xi, v in zip(xs, vals):
            if v:
                ax.plot([xi] * len(v), v, "k.", ms=4)
                ax.text(xi, max(max(v), 0.3) * 1.15, f"{np.mean(v):.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("symlog", linthresh=1)
    top = max([v for x in loads for s in subjects for v in cell_values(rows, s, x)] + [10.0])
    ax.set_ylim(0, top * 12)  # headroom for the legend above the tallest bar
    ax.set_xticks(np.arange(len(loads)), [LOAD_NOTES[x] for x in loads])
    ax.set_ylabel("gaps per minute heard (symlog)")
    ax.set_title("Full duplex on a PulseAudio null sink: gaps heard by an independent recorder (0 = none)")
    ax.legend(fontsize=8, ncol=len(subjects), loc="upper center")
    ax.grid(axis="y", alpha=0.3)

    def bars(ax: Any, rs: list[dict[str, Any]], med: str, p95: str, title: str, rt: bool = False) -> None:
        names = [r["subject"] for r in rs]
        m = [r.get(med) or 0.0 for r in rs]
        p = [max((r.get(p95) or 0.0) - (r.get(med) or 0.0), 0.0) for r in rs]
        ax.barh(np.arange(len(rs)), m, xerr=[np.zeros(len(rs)), p], capsize=3,
                color=["tab:blue" if n.startswith("duplex") else "tab:gray" for n in names])
        for i, v in enumerate(m):
            ax.text(v + p[i], i, f" {v:.0f}", va="center", fontsize=8)
        if rt:  # the click's round trip through the same implementation: what was in flight
            ys = [i for i, r in enumerate(rs) if r.get("roundtrip_ms") is not None]
            ax.plot([rs[i]["roundtrip_ms"] for i in ys], ys, "rD", ms=5, label="round trip of a click")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_yticks(np.arange(len(rs)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ms (bar: median, whisker: p95)")
        ax.grid(axis="x", alpha=0.3)

    b, c = _ok(rows, "bargein"), _ok(rows, "capture")
    if b:
        bars(fig.add_subplot(2, 2, 3), b, "raw_median_ms", "raw_p95_ms", "Barge-in: interrupt() to silence at the sink",
             rt=True)
    if c:
        bars(fig.add_subplot(2, 2, 4), c, "latency_median_ms", "latency_p95_ms",
             "Capture: click at the monitor to its chunk in Python")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
