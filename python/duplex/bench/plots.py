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


def jitter(runs: list[dict[str, Any]], path: Path, period_ms: float = 10.0) -> Path:
    """One panel per implementation, duplex first: |interval − period| of every hand-over as
    a histogram per scenario for the baselines; for duplex, whose engine keeps a histogram
    of its own and exposes p99 and max rather than every interval, a mark per scenario at
    each (p99 ▲, max ▼, in the scenario's colour). Every baseline panel also shows duplex's
    worst p99 and max as reference lines, labelled apart so a max equal to p99 still shows."""
    import matplotlib.pyplot as plt

    impls = _names(runs, "implementation")
    impls = (["duplex"] if "duplex" in impls else []) + [i for i in impls if i != "duplex"]
    scenarios = _names(runs, "scenario")
    duplex = [r for r in runs if r["implementation"] == "duplex"]
    d_p99 = max((r["jitter_ms"]["p99"] for r in duplex if _finite(r["jitter_ms"].get("p99"))), default=None)
    d_max = max((r["jitter_ms"]["max"] for r in duplex if _finite(r["jitter_ms"].get("max"))), default=None)
    panels = max(1, len(impls))
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.4), squeeze=False)
    top = 1.0
    bins = np.logspace(-2, np.log10(200), 44)
    cmap = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], impls):
        for k, scen in enumerate(scenarios):
            colour = cmap(k % 10)
            mine = [r for r in runs if r["implementation"] == name and r["scenario"] == scen]
            vals = [x for r in mine for x in r["jitter_samples_ms"]]
            if vals:
                counts, _, _ = ax.hist(np.clip(vals, 0.01, 199), bins=bins, histtype="step", linewidth=1.4,
                                       color=colour, label=scen)
                top = max(top, float(np.max(counts)))
            elif name == "duplex":
                # Marks, not counts: placed by height in the panel (axes fraction), one row per scenario.
                for r in mine:
                    for key, marker, y in (("p99", "^", 0.86), ("max", "v", 0.80)):
                        v = r["jitter_ms"].get(key)
                        if _finite(v):
                            height = y - 0.14 * k
                            ax.plot([max(v, 0.011)], [height], marker=marker, markersize=8, color=colour,
                                    linestyle="none", label=scen, transform=ax.get_xaxis_transform())
                            ax.vlines(max(v, 0.011), 0, height, color=colour, linewidth=1, alpha=0.6,
                                      transform=ax.get_xaxis_transform())
                            ax.annotate(f"{v:.1f}", (max(v, 0.011), height), xycoords=ax.get_xaxis_transform(),
                                        xytext=(6, -3), textcoords="offset points", fontsize=7, color=colour)
                ax.text(0.03, 0.04, "the engine keeps a histogram\nand reports p99 and max,\nnot each interval",
                        transform=ax.transAxes, fontsize=7, color="#555555")
        if name != "duplex":
            if d_p99 is not None:
                ax.axvline(d_p99, color=_color("duplex"), linestyle="--", linewidth=1.6, label="duplex worst p99")
            if d_max is not None:
                ax.axvline(d_max, color="black", linestyle=":", linewidth=1.4, label="duplex worst max")
        ax.set_xscale("log")
        ax.set_xlim(0.009, 220)
        ax.set_title(f"{name}: hand-over jitter" if name != "duplex" else "duplex: engine p99 ▲ / max ▼",
                     fontsize=10)
        ax.set_xlabel(f"|interval − {period_ms:g} ms period| (ms, log)", fontsize=9)
        ax.grid(alpha=0.3)
    for ax, name in zip(axes[0], impls):
        if name == "duplex":
            ax.set_ylim(0, 1)
            ax.set_yticks([])
        else:
            ax.set_yscale("log")
            ax.set_ylim(0.8, top * 1.6)
            ax.set_ylabel("periods (count, log)")
    seen: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), fontsize=8, loc="center right", title="scenario / duplex")
    fig.tight_layout(rect=(0, 0, 1 - 1.3 / (4.6 * panels), 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and np.isfinite(v)


def underruns(runs: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars, scenario × implementation: underruns counted in each run's window (top)
    and the milliseconds of silence they inserted (bottom), in true units (a 1 s quick run
    with one underrun shows 1, not "60 per minute"). A zero is drawn as a thin outlined stub
    labelled 0, so a clean run is visible rather than missing."""
    import matplotlib.pyplot as plt

    impls, scenarios = _names(runs, "implementation"), _names(runs, "scenario")
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(scenarios) + 2), 7.5), sharex=True)
    width = 0.8 / len(impls)
    x = np.arange(len(scenarios))
    windows = sorted({round(r["window_s"], 1) for r in runs})
    span = f"{windows[0]:g} s" if len(windows) == 1 else f"{windows[0]:g}-{windows[-1]:g} s"
    panels = [
        ("underruns", "underruns (count)", f"Audible underruns in each {span} run (0 = clean audio)", "{:.0f}"),
        ("silence_ms", "silence inserted (ms)", "Silence the underruns inserted", "{:.0f}"),
    ]
    for ax, (key, ylabel, title, fmt) in zip(axes, panels):
        top = max((r[key] for r in runs), default=0) or 1
        for i, name in enumerate(impls):
            vals = [next((r[key] for r in runs if r["implementation"] == name and r["scenario"] == s), 0)
                    for s in scenarios]
            shown = [v if v > 0 else top * 0.03 for v in vals]  # a zero stays visible
            bars = ax.bar(x + (i - (len(impls) - 1) / 2) * width, shown, width, color=_color(name), label=name,
                          edgecolor=_color(name), linewidth=0.8)
            for bar, v in zip(bars, vals):
                if v == 0:
                    bar.set_facecolor("white")
                    bar.set_hatch("////")
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + top * 0.01, fmt.format(v),
                        ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, top * 1.18)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=_color(n), edgecolor=_color(n), label=n) for n in impls]
    handles.append(Patch(facecolor="white", edgecolor="#444444", hatch="////", label="0 (none)"))
    axes[0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
           "Interrupt-to-silence (dots: barge-ins, bars: medians)", target_ms,
           "0 ms (output already silent), drawn at {floor} ms")
    return _save(fig, path)


def capture(runs: list[dict[str, Any]], path: Path) -> Path:
    """Capture-to-chunk latency of every click (dots) and medians (bars), log scale."""
    import matplotlib.pyplot as plt

    scenarios = _names(runs, "scenario")
    fig, ax = plt.subplots(figsize=(max(9, 1.3 * len(scenarios) + 4), 4.8))
    _strip(ax, runs, "capture_ms", "click enters device → read() returns it (ms, log)",
           "Capture-to-chunk latency (dots: clicks, bars: medians)", None,
           "below {floor} ms, drawn at {floor} ms", lost_key="clicks_lost")
    return _save(fig, path)
