"""Pareto plots for the decision report: mean accuracy (with its 95% interval over seeds)
against a cost (money, trainable parameters, peak memory), the frontier marked and named.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none has a cost <= and an accuracy >=,
    with one of them strictly better. `points` are (cost, accuracy)."""
    front = []
    for i, (cost, accuracy) in enumerate(points):
        dominated = any(
            c <= cost and a >= accuracy and (c < cost or a > accuracy) for j, (c, a) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_pareto(configs: list, cost_of, x_label: str, title: str, path: Path, log_x: bool = False, chosen=None,
                frontier_label: str = "Pareto frontier", x_format=None) -> list[int]:
    """One plot: each configuration at (cost_of(config), mean accuracy) with its interval as
    an error bar; the frontier joined and every point named; degenerate configurations drawn
    as red crosses and kept off the frontier; the recommended one starred. Returns the
    frontier's indices."""
    points = [(cost_of(c), c.accuracy.mean) for c in configs]
    usable = [i for i, (x, _) in enumerate(points) if x is not None and x > 0]
    healthy = [i for i in usable if not configs[i].degenerate]
    front = [healthy[i] for i in pareto_front([points[i] for i in healthy])]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=130)
    for i in usable:
        config, (x, y) = configs[i], points[i]
        low, high = config.accuracy.low, config.accuracy.high
        yerr = [[y - low], [high - y]] if low is not None else None
        if config.degenerate:
            style = dict(fmt="x", ms=8, color="tab:red")
        elif i in front:
            style = dict(fmt="o", ms=8, color="tab:blue")
        else:
            style = dict(fmt="o", ms=6, color="tab:gray", mfc="white")
        ax.errorbar(x, y, yerr=yerr, capsize=3, zorder=3, **style)
        if config is chosen:
            ax.plot(x, y, marker="*", ms=18, color="gold", mec="black", zorder=4, ls="none", label="recommended")
        name = config.label + (" (degenerate)" if config.degenerate else "")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=8,
                    color="tab:red" if config.degenerate else ("black" if i in front else "dimgray"))
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:blue", lw=1, zorder=2,
                label=frontier_label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # minor labels of a log axis collide
    if x_format:
        if log_x:  # labelled ticks at 1, 2 and 5 of each decade: a decade or two of range still gets several
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: x_format(value)))
    ax.set_xlabel(x_label)
    several = any(c.accuracy.low is not None for c in configs)
    ax.set_ylabel("eval accuracy (mean over seeds, 95% CI)" if several else "eval accuracy (one seed each)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return front
