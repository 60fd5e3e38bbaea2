"""PNG figures (matplotlib, Agg backend): per-view bars for TVR, per-category bars for the others,
and the run comparison of `eval report`. Each function returns the Figure (tests count its bars)
after saving it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from star_verl.tasks.official import MINDCUBE_EXCLUDED_FROM_OVERALL  # noqa: E402
from star_verl.tasks.registry import SPARBENCH_LEVELS  # noqa: E402

LEVEL_COLORS = {"low": "#4C72B0", "middle": "#DD8452", "high": "#55A868"}
PAPER_COLOR = "#BBBBBB"


def _label_bars(ax, bars, fmt: str = "{:.1f}", horizontal: bool = False, rotation: int = 0) -> None:
    for bar in bars:
        value = bar.get_width() if horizontal else bar.get_height()
        if horizontal:
            ax.annotate(
                fmt.format(value), (value, bar.get_y() + bar.get_height() / 2), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8
            )
        else:
            ax.annotate(
                fmt.format(value),
                (bar.get_x() + bar.get_width() / 2, value),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7 if rotation else 8,
                rotation=rotation,
            )


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tvr_figure(name: str, block: Mapping[str, Any], path: Path):
    """Two panels: accuracy (Acc, LAcc) per view and in total; NDiff per view and in total."""
    groups = [*block["views"], "total"]
    data = {**block["views"], "total": block["total"]}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    xs = range(len(groups))
    for offset, key, color in ((-width / 2, "Acc", "#4C72B0"), (width / 2, "LAcc", "#8FB0E0")):
        bars = ax1.bar([x + offset for x in xs], [data[g][key] for g in groups], width, label=key, color=color)
        _label_bars(ax1, bars)
    ax1.set_xticks(list(xs), [f"{g}\n(n={data[g]['n']})" for g in groups])
    ax1.set_ylim(0, 130)  # room above the 100% labels for the legend
    ax1.set_yticks(range(0, 101, 20))
    ax1.set_ylabel("%")
    ax1.legend(loc="upper center", fontsize=8, ncols=2, frameon=False)
    ax1.set_title(f"{name}: accuracy (TAcc {block['total']['TAcc']:.1f})", fontsize=10)
    bars = ax2.bar(list(xs), [data[g]["NDiff"] for g in groups], 0.6, color="#C44E52")
    _label_bars(ax2, bars, "{:.2f}")
    ax2.set_xticks(list(xs), groups)
    ax2.set_ylim(0, max(1.0, max(data[g]["NDiff"] for g in groups) * 1.2))
    ax2.set_title("NDiff (lower is better)", fontsize=10)
    _save(fig, path)
    return fig


def _hbar_figure(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    colors: Sequence[str],
    path: Path,
    xlabel: str,
    legend: Mapping[str, str] | None = None,
):
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.32 * len(labels)))
    ys = list(range(len(labels)))[::-1]
    bars = ax.barh(ys, values, color=colors)
    _label_bars(ax, bars, horizontal=True)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.set_xlim(0, 112)  # room right of a 100% bar for its label
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    if legend:  # outside the axes, so it never hides a bar
        ax.legend(
            handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in legend.values()],
            labels=list(legend),
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
        )
    _save(fig, path)
    return fig


def mindcube_figure(name: str, block: Mapping[str, Any], path: Path):
    excluded = ", not in overall"
    labels = [f"{s} (n={v['n']}{excluded if s in MINDCUBE_EXCLUDED_FROM_OVERALL else ''})" for s, v in block["settings"].items()] + [
        f"overall (n={block['n_overall']})"
    ]
    values = [v["accuracy"] for v in block["settings"].values()] + [block["overall"] or 0.0]
    colors = ["#4C72B0"] * (len(labels) - 1) + ["#333333"]
    return _hbar_figure(f"{name}: accuracy per setting", labels, values, colors, path, "accuracy (%)")


def spar_figure(name: str, block: Mapping[str, Any], path: Path):
    level_of = {t: level for level, tasks in SPARBENCH_LEVELS.items() for t in tasks}
    tasks = sorted(block["tasks"], key=lambda t: (list(SPARBENCH_LEVELS).index(level_of[t]) if t in level_of else 3, t))
    labels = [f"{t} (n={block['tasks'][t]['n']})" for t in tasks] + ["overall"]
    values = [block["tasks"][t]["value"] for t in tasks] + [block["overall"] or 0.0]
    colors = [LEVEL_COLORS.get(level_of.get(t, ""), "#8172B3") for t in tasks] + ["#333333"]
    return _hbar_figure(
        f"{name}: score per task (accuracy or MRA)", labels, values, colors, path, "score (%)", legend={k: v for k, v in LEVEL_COLORS.items()}
    )


def mmsi_figure(name: str, block: Mapping[str, Any], path: Path):
    cats = list(block["categories"])
    labels = [f"{c} (n={block['categories'][c]['n']})" for c in cats] + ["overall"]
    values = [block["categories"][c]["accuracy"] for c in cats] + [block["overall"]]
    colors = ["#4C72B0"] * len(cats) + ["#333333"]
    return _hbar_figure(f"{name}: accuracy per category", labels, values, colors, path, "accuracy (%)")


FIGURES = {"tvr": tvr_figure, "mindcube": mindcube_figure, "spar": spar_figure, "mmsi": mmsi_figure}


def benchmark_figures(benchmarks: Mapping[str, Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    paths = {}
    for name, block in benchmarks.items():
        path = out_dir / f"{name}.png"
        FIGURES[block["family"]](name, block, path)
        paths[name] = path
    return paths


def comparison_figure(
    entries: Sequence[tuple[str, str]],
    runs: Mapping[str, Mapping[tuple[str, str], float]],
    paper: Mapping[tuple[str, str], float],
    path: Path,
    lower_is_better: Sequence[str] = ("NDiff", "Diff"),
):
    """Grouped bars: one group per (benchmark, metric), one bar per run, the paper's number in gray.
    Metrics where lower is better (NDiff) go to a second, narrow panel with their own scale."""
    pct = [e for e in entries if e[1] not in lower_is_better]
    low = [e for e in entries if e[1] in lower_is_better]
    series = [*runs, "paper"] if paper else list(runs)
    fig, axes = plt.subplots(
        1,
        2 if low else 1,
        figsize=(max(7, 0.3 * len(pct) * len(series) + 2.5) + (0.3 * len(low) * len(series) + 1.2 if low else 0), 4.2),
        squeeze=False,
        gridspec_kw={"width_ratios": [max(1, len(pct)), max(1, len(low))] if low else [1]},
    )
    colors = plt.get_cmap("tab10").colors
    for ax, group, ylabel in ((axes[0][0], pct, "%"), *(((axes[0][1], low, "lower is better"),) if low else ())):
        width = 0.8 / len(series)
        for i, run in enumerate(series):
            source = paper if run == "paper" else runs[run]
            xs = [j + (i - (len(series) - 1) / 2) * width for j, e in enumerate(group) if e in source]
            ys = [source[e] for e in group if e in source]
            bars = ax.bar(
                xs,
                ys,
                width,
                label=run,
                color=PAPER_COLOR if run == "paper" else colors[i % 10],
                hatch="//" if run == "paper" else None,
                edgecolor="white",
            )
            _label_bars(ax, bars, "{:.2f}" if group is low else "{:.1f}", rotation=90 if len(series) > 2 else 0)
        ax.set_xticks(range(len(group)), [f"{b}\n{m}" for b, m in group], fontsize=8)
        ax.set_ylabel(ylabel)
        if group is low:
            top = max([v for src in (*runs.values(), paper) for e, v in src.items() if e in group] or [1.0])
            ax.set_ylim(0, top * 1.3)
        if group is pct:
            ax.set_ylim(0, 135)  # room above the 100% labels for the legend
            ax.set_yticks(range(0, 101, 20))
    axes[0][0].legend(fontsize=8, loc="upper center", ncols=min(5, len(series)), frameon=False)
    axes[0][0].set_title("runs beside the paper's reported numbers", fontsize=10)
    _save(fig, path)
    return fig


def curves_figure(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], path: Path):
    """`star-verl curves`: one panel per reward component, its mean per training step, one line per
    family (`row["family"]`), with a legend when there is more than one."""
    ncols = 3
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
    families = list(dict.fromkeys(row["family"] for row in rows))
    for ax, key in zip(axes.flat, keys, strict=False):
        for group in families:
            pts = [(row["step"], row[key]) for row in rows if row["family"] == group]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=group)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if len(families) > 1:
        axes.flat[0].legend()
    fig.suptitle("reward components per training step (mean over rollouts)")
    _save(fig, path)
    return fig
