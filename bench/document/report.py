"""The decision report: one or more CSV reports in, a document out.

    python -m bench.report reports/offline-seeds.csv              # or: bench-report reports/offline-seeds.csv
    python -m bench.report shard1.csv shard2.csv --price H100=2.10 --price cpu=0.03

Writes `<stem>.report.md` and a self-contained `<stem>.report.html` (plots embedded) beside
the first CSV, and the plots as PNGs in `<stem>.report/`; prints where they are. What is
decided and how is bench/decision/decide.py; this module lays it out: sections of prose
(bench/document/prose.py), tables (tables.py) and figures (figures.py), rendered by render.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import OneLineParser, one_line_errors
from bench.decision.configs import Config
from bench.decision.cost import parse_prices
from bench.decision.decide import COST_TIE, Decision, decide
from bench.decision.serving_cost import SERVE_AT, served_candidates, traffic_sentence
from bench.decision.text import short_checkpoint
from bench.document import prose, tables
from bench.document.figures import CostAxis, plot_learning_curves, plot_pareto, plot_sweep
from bench.document.render import (
    README_MARKERS,
    Image,
    Table,
    to_html,
    to_markdown,
    update_readme,
)
from bench.generated import check_block


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="CSV reports of one suite (shards and reruns are combined by run_id)")
    parser.add_argument("--price", action="append", metavar="[NAME=]USD",
                        help="price per device-hour: NAME matched in the device name (CPU: per thread), or one price for all")
    parser.add_argument("--overfit-below", type=float, default=0.5, help="loss ratio below which a run overfits (default 0.5)")
    parser.add_argument("--fine-above", type=float, default=0.7, help="loss ratio above which a run fits fine (default 0.7)")
    parser.add_argument("--mixed-devices", action="store_true",
                        help="compare rows measured on different devices (refused otherwise: their speed and cost do not compare)")
    parser.add_argument("--traffic", type=float, metavar="N", help="expected predictions a month: recommend on total cost, "
                        "training (with its sweep) + serving (default: training cost alone)")
    parser.add_argument("--months", type=float, default=12.0, help="how long the model serves, for --traffic (default 12)")
    parser.add_argument("--serve-at", choices=SERVE_AT, default="throughput",
                        help="serving cost from batched throughput (default) or one request at a time (batch1)")
    parser.add_argument("--readme", type=Path, help="also write the configurations table into this file's decision-report block")
    args = parser.parse_args(argv)
    if not 0 < args.overfit_below <= args.fine_above:
        parser.error("need 0 < --overfit-below <= --fine-above")
    if args.traffic is not None and not 0 < args.traffic < float("inf"):
        parser.error(f"--traffic must be a positive number of predictions a month, got {args.traffic:g}")
    if not 0 < args.months < float("inf"):
        parser.error(f"--months must be a positive number of months, got {args.months:g}")
    return args


def build_document(paths, decision: Decision, plots, sweep_plots, curve_plots, args, serving_plots=()) -> list[tuple[str, list]]:
    """The report as sections of blocks (text, Table, Image), rendered to Markdown and HTML."""
    configs, best, choice, not_ok = decision.configs, decision.best, decision.choice, decision.not_ok
    sections = [
        ("", [prose.intro(paths, decision)]),
        ("Recommendation", [decision.why, prose.reading(configs, best, args), prose.tradeoffs(configs, choice)]),
        ("Protocol", [prose.protocol(decision)]),
        ("Configurations", [tables.configuration_table(configs, best, choice, args), prose.legend(args)]),
        ("Pareto plots", [Image(p, caption) for p, caption in plots]),
    ]
    swept = [c for c in configs if c.tuned and c.tuned.swept]
    if swept:
        sections.append(("Tuning", [tables.tuning_table(swept), prose.tuning_note(swept)] + [Image(p, caption) for p, caption in sweep_plots]))
    if curve_plots:
        sections.append(("Learning curves", [tables.learning_curve_table(decision.curves)] + [Image(p, c) for p, c in curve_plots]))
    sections += [
        ("Significance", [tables.significance_table(configs, best), prose.significance_note(args)]),
        ("Cost", [tables.cost_table(configs), prose.cost_note(configs, args)]
         + ([tables.budget_table(decision.bill, len(decision.screening)), prose.budget_note(decision)] if decision.bill else [])),
    ]
    if any(c.serving for c in configs):
        sections.append(("Serving", serving_section(decision) + [Image(p, caption) for p, caption in serving_plots]))
    if decision.screening:
        sections.append(("Screening", [tables.screening_table(decision.screening), prose.screening_note(decision)]))
    if not_ok:
        sections.append(("Runs that did not finish", [Table(
            ["checkpoint", "strategy", "seed", "status", "error"],
            [[short_checkpoint(r["checkpoint"]), r["strategy"], r["seed"], r["status"], (r.get("error") or "")[:160]] for r in not_ok],
        )]))
    return sections


def serving_section(decision: Decision) -> list:
    """The serving table, how the choice changes with traffic, and what was measured."""
    configs, months, serve_at = decision.configs, decision.months, decision.serve_at
    blocks = [tables.serving_table(configs, decision.traffic, months, serve_at)]
    candidates = served_candidates(configs)
    if candidates:
        blocks.append(f"Total cost over {months:g} months (training with its sweep + serving), among the configurations "
                      f"statistically as accurate as the best: {traffic_sentence(candidates, months, serve_at, COST_TIE)}"
                      + ("" if decision.traffic else " Pass --traffic N (predictions a month) to recommend on it."))
    blocks.append(prose.serving_note(configs, serve_at))
    return blocks


def make_report(args) -> tuple[Path, Path, Path]:
    if args.readme:
        check_block(args.readme, README_MARKERS)  # before anything is written
    decision = decide(args.reports, parse_prices(args.price), args.mixed_devices, args.traffic, args.months, args.serve_at)
    configs, best, choice = decision.configs, decision.best, decision.choice
    first = args.reports[0]
    folder, stem = first.parent.resolve(), first.stem
    plot_dir = folder / f"{stem}.report"
    plots = pareto_plots(configs, plot_dir, stem, choice)
    serving_plots = serving_pareto_plot(decision, plot_dir, stem)
    sweep_plots = make_sweep_plots(configs, plot_dir, stem)
    curve_plots = make_curve_plots(decision.curves, plot_dir, stem)
    sections = build_document(args.reports, decision, plots, sweep_plots, curve_plots, args, serving_plots)
    title = f"Decision report: {configs[0].first.get('suite') or stem}"
    md_path, html_path = folder / f"{stem}.report.md", folder / f"{stem}.report.html"
    md_path.write_text(to_markdown(title, sections, folder))
    html_path.write_text(to_html(title, sections))
    if args.readme:
        table = to_markdown("", [("", [tables.configuration_table(configs, best, choice, args)])], folder).split("\n", 2)[2].strip()
        update_readme(args.readme, f"{decision.why} {prose.tradeoffs(configs, choice)}\n\n{table}", md_path)
    return md_path, html_path, plot_dir


def make_sweep_plots(configs: list[Config], plot_dir: Path, stem: str) -> list[tuple[Path, str]]:
    out = []
    for config in configs:
        if config.tuned and config.tuned.swept:
            name = "sweep-" + "".join(ch if ch.isalnum() else "-" for ch in config.label) + ".png"
            plot_sweep(config.tuned, config.label, plot_dir / name, f"{stem}: {config.label}")
            out.append((plot_dir / name, f"{config.label}: validation accuracy of each point of its sweep; the star is the chosen point"))
    return out


def make_curve_plots(curves: dict, plot_dir: Path, stem: str) -> list[tuple[Path, str]]:
    if not curves:
        return []

    path = plot_dir / "learning-curves.png"
    plot_learning_curves(curves, path, f"{stem}: how many labels do we need?")
    return [(path, "Test accuracy (chosen points, mean over seeds) and cost per run against the number of labelled training examples")]


def parameters(value: float) -> str:
    """A parameter count as a tick label: 25k, 1.2M, 110M."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def pareto_plots(configs: list[Config], plot_dir: Path, stem: str, chosen: Config) -> list[tuple[Path, str]]:
    measures = {r.get("memory_measure", "") for c in configs for r in c.rows}
    memory = "CPU: peak RSS of the whole process" if any(m.startswith("cpu") for m in measures) else "CUDA max allocated"
    specs = [
        ("pareto-cost.png", lambda c: c.cost_usd.mean, "cost per run: training + validation (USD, log scale; prices: see Cost)",
         "accuracy vs money", "nothing cheaper is as accurate", lambda v: f"${v:.2g}"),
        ("pareto-params.png", lambda c: c.trainable_params, "trainable parameters (log scale)",
         "accuracy vs trainable parameters", "nothing with fewer trainable parameters is as accurate", parameters),
        ("pareto-memory.png", lambda c: c.peak_memory_mb, f"peak memory per process (MB; {memory})",
         "accuracy vs peak memory", "nothing using less memory is as accurate", None),
    ]
    plots = []
    for name, cost_of, x_label, what, frontier, x_format in specs:
        path = plot_dir / name
        axis = CostAxis(cost_of, x_label, f"Pareto frontier ({frontier})", x_format, log="log scale" in x_label)
        front = plot_pareto(configs, axis, f"{stem}: {what}", path, chosen=chosen)
        names = ", ".join(configs[i].label for i in front)
        plots.append((path, f"{what.capitalize()}; Pareto frontier: {names}"))
    return plots


def serving_pareto_plot(decision: Decision, plot_dir: Path, stem: str) -> list[tuple[Path, str]]:
    """Accuracy against serving cost per million predictions, beside the training-cost plot."""
    configs = decision.configs
    if not any(c.serving for c in configs):
        return []
    batch1 = decision.serve_at == "batch1"
    path = plot_dir / "pareto-serving.png"
    axis = CostAxis(lambda c: c.serving.usd_per_million(decision.serve_at) if c.serving else None,
                    f"serving cost per million predictions ({'one request at a time' if batch1 else 'batched'}; USD, log scale)",
                    "Pareto frontier (nothing cheaper to serve is as accurate)", lambda v: f"${v:.2g}", log=True)
    front = plot_pareto(configs, axis, f"{stem}: accuracy vs serving cost", path, chosen=decision.choice)
    names = ", ".join(configs[i].label for i in front)
    return [(path, f"Accuracy vs serving cost per million predictions; Pareto frontier: {names}")]


@one_line_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    md_path, html_path, plot_dir = make_report(args)
    print(f"wrote {md_path}\nwrote {html_path}\nplots in {plot_dir}")
    return 0

