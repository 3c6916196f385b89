"""The report's tables, from the Decision's objects: configurations, significance, cost,
tuning, learning curves, serving. Numbers are written by bench/decision/text.py."""

from __future__ import annotations

import math

import numpy as np

from bench.decision.budget import Bill, seconds
from bench.decision.configs import Config
from bench.decision.decide import ALPHA
from bench.decision.serving_cost import total_usd
from bench.decision.stats import CONFIDENCE, Summary
from bench.decision.text import (
    accuracy,
    count,
    p_value,
    short_checkpoint,
    thousands,
    usd,
)
from bench.document.render import Table


def fit_flag(loss_ratio: float, overfit_below: float, fine_above: float) -> str:
    """The seed notebook's reading of train loss / validation loss."""
    if math.isnan(loss_ratio):  # no held-out loss to compare with
        return "n/a"
    if loss_ratio < overfit_below:
        return "overfits"
    if loss_ratio <= fine_above:
        return "watch"
    return "fine"


def configuration_table(configs: list[Config], best: Config, choice: Config, args) -> Table:
    rows = []
    for c in configs:
        flags = [fit_flag(c.loss_ratio.mean, args.overfit_below, args.fine_above)]
        if c.degenerate:
            flags.append("DEGENERATE")
        verdict = "best" if c is best else "degenerate" if c.degenerate else "same as best" if c.indistinguishable else (
            "worse" if c.p_holm is not None else "untested: no per-example predictions")
        rows.append([
            c.label + (" (recommended)" if c is choice else ""),
            str(len(c.rows)),
            with_interval(c.validation, accuracy) if c.validation else "none",
            with_interval(c.accuracy, accuracy),
            per_seed(c.accuracy, accuracy),
            verdict,
            with_interval(c.loss_ratio, lambda v: f"{v:.2f}") + f" {', '.join(flags)}",
            with_interval(c.speed, lambda v: f"{v:,.1f}") + (" *shared features*" if any(r.get("reused_cache_seconds") for r in c.rows) else ""),
            thousands(c.trainable_params),
            f"{c.peak_memory_mb:,.0f}" if c.peak_memory_mb is not None else "",
            usd(c.cost_usd.mean),
            f"{usd(c.tuning_cost_usd)} ({c.tuning_runs} runs)" if c.tuned and c.tuned.swept else "(not swept)",
        ])
    return Table(
        ["configuration", "seeds", "validation accuracy (chooses)", f"test accuracy, mean [{CONFIDENCE:.0%} CI]",
         "test accuracy per seed", "vs best", "loss ratio, fit", "train samples/s", "trainable params", "peak memory MB",
         "cost per run", "tuning cost (every point and seed)"],
        rows,
    )


def significance_table(configs: list[Config], best: Config) -> Table:
    rows = []
    for c in configs:
        if c is best:
            continue
        test = c.vs_best
        seed = "fewer than 3 shared seeds"
        if c.seed_test:
            p, shared = c.seed_test
            seed = f"undefined: the same difference in all {shared} seeds" if np.isnan(p) else f"p {p_value(p, '= ')} over {shared} seeds"
        rows.append([
            c.label,
            f"{test.difference * 100:+.1f} points" if test else "",
            test.test if test else "no per-example predictions",
            f"{test.examples:,}" if test else "",
            p_value(test.p_value) if test else "",
            p_value(c.p_holm) if c.p_holm is not None else "",
            "yes" if c.indistinguishable else "no",
            seed,
        ])
    return Table(["vs " + best.label, "accuracy difference", "test", "examples", "p", "p (Holm)",
                  f"indistinguishable (p >= {ALPHA})", "paired t-test over seeds (Holm)"], rows)


def cost_table(configs: list[Config]) -> Table:
    rows = []
    for c in sorted(configs, key=lambda c: c.cost_usd.mean):
        gain = c.accuracy.mean - (c.majority_rate or 0.0)
        full = c.full_data_cost
        rows.append([
            c.label,
            f"{c.device_hours * 3600:,.0f}",
            f"{c.device_hours:.4f}",
            usd(c.cost_usd.mean),
            usd(c.tuning_cost_usd) + (f" ({c.tuning_runs} runs)" if c.tuned and c.tuned.swept else ""),
            f"{gain * 100 / c.cost_usd.mean:,.0f}" if c.majority_rate is not None and c.cost_usd.mean > 0 else "",
            usd(full) if full is not None else "(ran on the whole split)",
        ])
    whole = configs[0].first.get("train_split_examples")
    return Table(["configuration", "device-seconds per run", "device-hours", "cost per run", "tuning cost (all its runs)",
                  "test accuracy points above the majority class per $",
                  f"projected cost on the whole train split ({int(whole):,} examples)" if whole else "projected cost on the whole split"],
                 rows)


def budget_table(bill: Bill, screened: int) -> Table:
    """The budgeted decision's bill, part by part, beside the full grid's."""
    def line(label, device_seconds, runs=""):
        return [label, seconds(device_seconds), f"{device_seconds / 3600:.4f}", usd(bill.usd(device_seconds)), runs]
    rows = []
    if screened:
        rows.append(line(f"screening ({screened} checkpoints scored)", bill.screening_seconds))
    rows.append(line("fine-tuning runs that finished", bill.run_seconds, f"{bill.runs:,}"))
    if bill.stopped:
        rows.append(line("points stopped by halving, up to their rung", bill.stopped_seconds, f"{bill.stopped:,}"))
    rows.append(line("**the decision, in all**", bill.spent_seconds, f"{bill.runs + bill.stopped:,}"))
    rows.append(line("the full grid, " + ("measured (its rows are in this report)" if bill.grid_measured else "estimated"),
                     bill.grid_seconds, f"{bill.grid_runs:,}"))
    rows.append(["share of the full grid", f"{bill.fraction:.0%}", "", "", ""])
    return Table(["what the decision paid for", "device-seconds", "device-hours", "cost", "runs"], rows)


def tuning_table(swept: list[Config]) -> Table:
    rows = []
    for c in swept:
        t = c.tuned
        for point in t.points:
            score = point.validation_on(set(t.seeds_compared))
            rows.append([
                c.label,
                ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.values.items()),
                ", ".join(str(int(r["seed"])) for r in point.rows),
                accuracy(score) if score is not None else "",
                "**chosen**" if point is t.chosen else "",
            ])
        for point in t.stopped_points:
            epoch = max(int(r["epochs_run"]) for r in point.rows)
            rows.append([
                c.label,
                ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.values.items()),
                ", ".join(str(int(r["seed"])) for r in point.rows),
                accuracy(point.validation_on({int(r["seed"]) for r in point.rows})) + f" at epoch {epoch}",
                f"stopped by halving at epoch {epoch}",
            ])
    return Table(["configuration", "point", "seeds run", "validation accuracy (seeds compared)", "choice"], rows)


def learning_curve_table(curves: dict) -> Table:
    sizes = sorted({size for points in curves.values() for size in points})
    rows = []
    for label, points in curves.items():
        rows.append([label] + [f"{accuracy(points[s].accuracy.mean)} ({usd(points[s].cost_usd.mean)})" if s in points else "" for s in sizes])
    return Table(["configuration"] + [f"{s:,} labels: test accuracy (cost per run)" for s in sizes], rows)


def with_interval(summary: Summary, fmt) -> str:
    if summary.low is None:
        return fmt(summary.mean)
    return f"{fmt(summary.mean)} [{fmt(summary.low)}, {fmt(summary.high)}]"


def per_seed(summary: Summary, fmt) -> str:
    if summary.n >= 6:
        return f"sd {summary.std:.3f}"
    return ", ".join(fmt(v) for v in summary.values) + (f" (sd {summary.std:.3f})" if summary.std is not None else "")


def serving_table(configs: list, traffic: float | None, months: float, serve_at: str) -> Table:
    rows = []
    for c in sorted(configs, key=lambda c: c.serving.per_million if c.serving else float("inf")):
        s = c.serving
        if s is None:
            rows.append([c.label] + ["not measured"] + [""] * (10 + (traffic is not None)))
            continue
        unmerged = (f"{s.unmerged_p50_ms:.1f} ms, {usd(s.unmerged_per_million)}/M; agreement {s.agreement:.3f}"
                    if s.unmerged_samples_per_s else "")
        own = (f"; its runs: {s.measured_samples_per_s:,.0f}" if s.pooled_with and s.measured_samples_per_s else "")
        row = [
            c.label, s.form, f"{s.p50_ms:.1f} / {s.p99_ms:.1f}", f"{s.tokenize_ms:.2f}", str(s.input_tokens or ""),
            f"{s.samples_per_s:,.0f} (batch {s.batch_size}){own}", usd(s.per_million_batch1), usd(s.per_million),
            megabytes(s.memory_mb), megabytes(s.stored_mb),
            unmerged, ", ".join(s.pooled_with),
        ]
        if traffic is not None:
            row.append(usd(total_usd(c, traffic, months, serve_at)))
        rows.append(row)
    headers = ["configuration", "served", "latency p50 / p99 ms (batch 1)", "tokenize ms", "tokens per request",
               "throughput, predictions/s", "USD per million, batch 1", "USD per million, batched", "serving memory MB",
               "stored MB (beside the checkpoint)", "unmerged adapter: p50, USD per million", "same served compute as (pooled)"]
    if traffic is not None:
        headers.append(f"total at {count(traffic)}/month x {months:g} months")
    return Table(headers, rows)


def megabytes(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def screening_table(screen: list[dict]) -> Table:
    rows = [[short_checkpoint(r["checkpoint"]), f"{r['score']:.4g} [{r['low']:.4g}, {r['high']:.4g}]",
             thousands(r["parameters"]), f"{r['seconds']:.1f}", "fine-tuned" if r["kept"] else "**dropped**",
             r["reason"]] for r in screen]
    name = screen[0]["score_name"]
    return Table(["checkpoint", f"{name} [95% bootstrap interval]", "parameters", "scoring s", "verdict", "why"], rows)
