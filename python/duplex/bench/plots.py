"""matplotlib figures of a set of runs (Agg backend; the caller selects it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jitter", "underruns", "interrupts", "capture"]

COLORS = {
    "duplex": "#1b9e77",
    "cookbook": "#d95f02",
    "cookbook-4p": "#e6ab02",
    "callback": "#7570b3",
    "callback-4p": "#e7298a",
}


def _color(name: str) -> str:
    return COLORS.get(name, "#666666")


def _names(runs: list[dict[str, Any]], key: str) -> list[str]:
    return list(dict.fromkeys(r[key] for r in runs))


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def jitter(runs: list[dict[str, Any]], path: Path) -> Path:
    """Histograms of |interval − period| per baseline, one line per scenario, with duplex's
    worst p99 and max (its engine exposes percentiles, not every interval) for reference."""
    import matplotlib.pyplot as plt

    impls = [i for i in _names(runs, "implementation") if any(r["jitter_samples_ms"] for r in runs if r["implementation"] == i)]
    scenarios = _names(runs, "scenario")
    duplex = [r for r in runs if r["implementation"] == "duplex"]
    d_p99 = max((r["jitter_ms"]["p99"] for r in duplex if r["jitter_ms"].get("p99") is not None), default=None)
    d_max = max((r["jitter_ms"]["max"] for r in duplex if r["jitter_ms"].get("max") is not None), default=None)
    panels = max(1, len(impls))
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), sharey=True, squeeze=False)
    bins = np.logspace(-2, np.log10(200), 44)
    cmap = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], impls):
        for k, scen in enumerate(scenarios):
            vals = [x for r in runs if r["implementation"] == name and r["scenario"] == scen for x in r["jitter_samples_ms"]]
            if vals:
                ax.hist(np.clip(vals, 0.01, 199), bins=bins, histtype="step", linewidth=1.4,
                        color=cmap(k % 10), label=scen)
        if d_p99 is not None:
            ax.axvline(d_p99, color=_color("duplex"), linestyle="--", linewidth=1.5, label=f"duplex p99 (worst) {d_p99:.2f} ms")
        if d_max is not None:
            ax.axvline(d_max, color=_color("duplex"), linestyle=":", linewidth=1.5, label=f"duplex max (worst) {d_max:.2f} ms")
        ax.set_xscale("log")
        ax.set_xlim(0.009, 220)
        ax.set_yscale("log")
        ax.set_title(f"{name}: period hand-over jitter")
        ax.set_xlabel("|interval − 10 ms period| (ms, log; ≤0.01 in first bin)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("periods (count)")
    seen: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), fontsize=8, loc="center right", title="scenario / duplex")
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def underruns(runs: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars, scenario × implementation: underruns per minute (top) and seconds of
    silence they inserted per minute (bottom), values printed on the bars."""
    import matplotlib.pyplot as plt

    impls, scenarios = _names(runs, "implementation"), _names(runs, "scenario")
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(scenarios) + 2), 7.5), sharex=True)
    width = 0.8 / len(impls)
    x = np.arange(len(scenarios))
    panels = [
        ("underruns_per_min", 1.0, "underruns per minute", "Audible underruns by load (0 = clean audio)", "{:.0f}"),
        ("silence_ms_per_min", 1e-3, "silence inserted (s per minute)", "Silence the underruns inserted", "{:.1f}"),
    ]
    for ax, (key, scale, ylabel, title, fmt) in zip(axes, panels):
        top = max((r[key] * scale for r in runs), default=0) or 1
        for i, name in enumerate(impls):
            vals = [next((r[key] * scale for r in runs if r["implementation"] == name and r["scenario"] == s), 0)
                    for s in scenarios]
            bars = ax.bar(x + (i - (len(impls) - 1) / 2) * width, vals, width, color=_color(name), label=name)
            for bar, v in zip(bars, vals):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + top * 0.01, fmt.format(v),
                        ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_ylim(0, top * 1.18)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[1].set_xticks(x, scenarios, rotation=20)
    axes[1].set_xlabel("background load (scenario)")
    return _save(fig, path)


def _strip(ax: Any, runs: list[dict[str, Any]], key: str, ylabel: str, title: str, target: float | None,
           floor_label: str, lost_key: str | None = None) -> None:
    impls, scenarios = _names(runs, "implementation"), _names(runs, "scenario")
    width = 0.8 / len(impls)
    rng = np.random.default_rng(0)
    floor = 0.3
    for i, name in enumerate(impls):
        for j, scen in enumerate(scenarios):
            vals = [v for r in runs if r["implementation"] == name and r["scenario"] == scen for v in r[key]]
            xpos = j + (i - (len(impls) - 1) / 2) * width
            lost = sum(r[lost_key] for r in runs if lost_key and r["implementation"] == name and r["scenario"] == scen)
            if lost:
                ax.text(xpos, 0.45, f"{lost}\nlost", ha="center", va="bottom", fontsize=6, color=_color(name))
            if not vals:
                continue
            vals_plot = np.maximum(vals, floor)
            ax.scatter(xpos + rng.uniform(-width / 4, width / 4, len(vals)), vals_plot, s=12,
                       color=_color(name), alpha=0.7, label=name if j == 0 else None)
            ax.hlines(np.median(vals_plot), xpos - width / 2.2, xpos + width / 2.2, color=_color(name), linewidth=2)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target: 1 period + fade = {target:.0f} ms")
    ax.axhspan(0.2, floor * 1.15, color="#dddddd", zorder=0, label=floor_label.format(floor=floor))
    ax.set_yscale("log")
    ax.set_ylim(0.2, None)
    ax.set_xticks(np.arange(len(scenarios)), scenarios, rotation=20)
    ax.set_xlabel("background load (scenario)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def interrupts(runs: list[dict[str, Any]], path: Path, target_ms: float) -> Path:
    """Every barge-in's interrupt-to-silence latency (dots) and medians (bars), log scale."""
    import matplotlib.pyplot as plt

    scenarios = _names(runs, "scenario")
    fig, ax = plt.subplots(figsize=(max(9, 1.3 * len(scenarios) + 4), 4.8))
    _strip(ax, runs, "interrupt_ms", "interrupt() → last audible frame (ms, log)",
           "Interrupt-to-silence at the device (dots: barge-ins, bars: median)", target_ms,
           "0 ms (output already silent), drawn at {floor} ms")
    return _save(fig, path)


def capture(runs: list[dict[str, Any]], path: Path) -> Path:
    """Capture-to-chunk latency of every click (dots) and medians (bars), log scale."""
    import matplotlib.pyplot as plt

    scenarios = _names(runs, "scenario")
    fig, ax = plt.subplots(figsize=(max(9, 1.3 * len(scenarios) + 4), 4.8))
    _strip(ax, runs, "capture_ms", "click enters device → read() returns it (ms, log)",
           "Capture-to-chunk latency (dots: clicks, bars: median; 'lost': dropped by a capture overrun)", None,
           "below {floor} ms, drawn at {floor} ms", lost_key="clicks_lost")
    return _save(fig, path)
