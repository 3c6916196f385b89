"""Plots for the decision report: Pareto plots of mean test accuracy (with its 95% interval
over seeds) against a cost (money, trainable parameters, peak memory), the frontier marked and
named; validation accuracy against each swept value, the chosen point starred; and learning
curves (test accuracy and cost against the number of labelled examples).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
from adjustText import adjust_text
from matplotlib import ticker

from bench.decision.decide import pareto_front


@dataclasses.dataclass(frozen=True)
class CostAxis:
    """The cost a Pareto plot puts across: how a configuration's cost is read, the axis label, the
    frontier's name in the legend, how ticks are written (None: matplotlib's), a log scale."""
    cost_of: Callable
    label: str
    frontier_label: str = "Pareto frontier"
    tick_format: Callable | None = None
    log: bool = False


def plot_pareto(configs: list, axis: CostAxis, title: str, path: Path, chosen=None) -> list[int]:
    """One plot: each configuration at (its cost, mean accuracy) with its interval as an error
    bar; the frontier joined and every point named; degenerate configurations drawn as red
    crosses and kept off the frontier; the recommended one starred. Returns the frontier's
    indices."""
    cost_of, log_x, x_format = axis.cost_of, axis.log, axis.tick_format
    points = [(cost_of(c), c.accuracy.mean) for c in configs]
    usable = [i for i, (x, _) in enumerate(points) if x is not None and x > 0]
    healthy = [i for i in usable if not configs[i].degenerate]
    front = [healthy[i] for i in pareto_front([points[i] for i in healthy])]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=130)
    labels = []
    for i in usable:
        config, (x, y) = configs[i], points[i]
        low, high = config.accuracy.low, config.accuracy.high
        yerr = [[y - low], [high - y]] if low is not None else None
        if config.degenerate:
            style = {"fmt": "x", "ms": 8, "color": "tab:red"}
        elif i in front:
            style = {"fmt": "o", "ms": 8, "color": "tab:blue"}
        else:
            style = {"fmt": "o", "ms": 6, "color": "tab:gray", "mfc": "white"}
        ax.errorbar(x, y, yerr=yerr, capsize=3, zorder=3, **style)
        if config is chosen:
            ax.plot(x, y, marker="*", ms=18, color="gold", mec="black", zorder=4, ls="none", label="recommended")
        name = config.label + (" (degenerate)" if config.degenerate else "") + (" (recommended)" if config is chosen else "")
        # the recommended one's name in bold: beside a near neighbour, which name is the star's must not be a guess
        labels.append(ax.text(x, y, name, fontsize=8, fontweight="bold" if config is chosen else "normal",
                              color="tab:red" if config.degenerate else ("black" if i in front else "dimgray")))
        labels[-1].set_in_layout(False)  # placed inside the axes below, once the layout is fixed
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="tab:blue", lw=1, zorder=2,
                label=axis.frontier_label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # minor labels of a log axis collide
    if x_format:
        if log_x:  # labelled ticks at 1, 2 and 5 of each decade: a decade or two of range still gets several
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: x_format(value)))
    ax.set_xlabel(axis.label)
    several = any(c.accuracy.low is not None for c in configs)
    ax.set_ylabel("test accuracy (mean over seeds, 95% CI)" if several else "test accuracy (one seed each)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.25, y=0.15)
    fig.tight_layout()
    place_labels(ax, labels, [points[i] for i in usable])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return front


def place_labels(ax, labels: list, points: list[tuple[float, float]]) -> None:
    """Move each name off every dot and every other name (adjustText), joined to its dot by a
    thin line where it had to move: two configurations close in cost and accuracy would
    otherwise print one name over the other's dot, and a reader could not tell which is which.
    Run once the axes have their final scale and limits (positions are solved on screen)."""
    if not labels:
        return
    ax.figure.canvas.draw()  # the texts' sizes on screen, which the placement needs
    adjust_text(labels, x=[x for x, _ in points], y=[y for _, y in points], ax=ax, expand=(1.3, 1.8),
                force_text=(0.6, 1.2), force_static=(0.4, 0.8), force_explode=(0.3, 1.0), max_move=(30, 30),
                arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.6})


def plot_sweep(tuned, label: str, path: Path, title: str) -> None:
    """Validation accuracy (over the seeds the choice compared) against each swept value: one
    panel per swept key, a log axis for learning rates and other positive ranges over 10x;
    the chosen point starred; the points halving stopped drawn too, hollow, at their validation
    accuracy on the epoch they stopped (named), so the plot shows the decision, not only its
    survivors."""
    keys = list(tuned.chosen.values)
    seeds = set(tuned.seeds_compared)
    stopped = tuned.stopped_points
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), dpi=130, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = [p.values[key] for p in tuned.points]
        every = values + [p.values.get(key) for p in stopped]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in every)
        place = (lambda v: v) if numeric else json_label
        scores = [p.validation_on(seeds) for p in tuned.points]
        ax.plot([place(v) for v in values], scores, "o", color="tab:blue", ms=7, zorder=3,
                label="trained to the end" if stopped else None)
        chosen = tuned.points.index(tuned.chosen)
        ax.plot(place(values[chosen]), scores[chosen], marker="*", ms=18, color="gold", mec="black", ls="none", zorder=4,
                label=f"chosen: {key} = {json_label(values[chosen])}")
        draw_stopped(ax, stopped, key, seeds, place)
        if numeric and len(set(values)) > 1 and len(keys) == 1:
            order = sorted(range(len(values)), key=lambda i: values[i])
            ax.plot([values[i] for i in order], [scores[i] for i in order], "-", color="tab:blue", lw=1, alpha=0.6)
        if numeric and min(every) > 0 and len(set(every)) > 1 and (key == "learning_rate" or max(every) / min(every) > 10):
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(every)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(key + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(f"validation accuracy (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, sorted(seeds)))})")
        ax.legend(loc="best", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.margins(x=0.15, y=0.2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def draw_stopped(ax, stopped: list, key: str, seeds: set, place) -> None:
    """The points halving stopped: hollow red circles at their validation accuracy on the epoch
    they stopped, each named by that epoch."""
    drawn = [(place(p.values.get(key)), p.validation_on(seeds), p) for p in stopped]
    drawn = [(x, y, p) for x, y, p in drawn if y is not None]
    if not drawn:
        return
    ax.plot([x for x, _, _ in drawn], [y for _, y, _ in drawn], "o", ms=7, mfc="white", mec="tab:red", mew=1.5,
            ls="none", zorder=3, label="stopped by halving (validation when it stopped)")
    for x, y, point in drawn:
        epochs = sorted({int(r["epochs_run"]) for r in point.rows if r.get("epochs_run")})
        if epochs:
            ax.annotate(f"epoch {'/'.join(map(str, epochs))}", (x, y), textcoords="offset points", xytext=(0, -13),
                        ha="center", fontsize=7, color="tab:red")


def plot_learning_curves(curves: dict, path: Path, title: str) -> None:
    """Two panels against labelled training examples (log axis): test accuracy of each
    strategy's chosen point (mean over seeds, 95% interval), and its cost per run."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), dpi=130, sharex=True)
    for label, points in curves.items():
        sizes = sorted(points)
        means = [points[s].accuracy.mean for s in sizes]
        errors = [[m - (points[s].accuracy.low if points[s].accuracy.low is not None else m) for s, m in zip(sizes, means)],
                  [(points[s].accuracy.high if points[s].accuracy.high is not None else m) - m for s, m in zip(sizes, means)]]
        line = top.errorbar(sizes, means, yerr=errors, marker="o", capsize=3, label=label)
        bottom.plot(sizes, [points[s].cost_usd.mean for s in sizes], marker="o", color=line[0].get_color(), label=label)
    top.set_ylabel("test accuracy (chosen point)")
    top.legend(loc="lower right", fontsize=8)
    bottom.set_ylabel("cost per run (USD)")
    bottom.set_xlabel("labelled training examples (log scale)")
    for ax in (top, bottom):
        ax.set_xscale("log")
        sizes = sorted({s for points in curves.values() for s in points})
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, alpha=0.3)
    top.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def json_label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)
