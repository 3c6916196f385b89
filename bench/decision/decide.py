"""The decision report: one or more CSV reports in, a choice of model and strategy out.

    python -m bench.report reports/offline-seeds.csv              # or: bench-report reports/offline-seeds.csv
    python -m bench.report shard1.csv shard2.csv --price H100=2.10 --price cpu=0.03

Writes `<stem>.report.md` and a self-contained `<stem>.report.html` (plots embedded) beside
the first CSV, and the plots as PNGs in `<stem>.report/`; prints where they are.

First the selection protocol (bench/decision/selection.py): each sweep's point is chosen on
validation accuracy; only chosen points go on. Per chosen configuration (a `config_id`:
everything but the seed) over its seeds: mean, standard deviation and a 95% bootstrap
interval of test accuracy, loss ratio and samples/s; cost per run and the tuning cost of its
whole sweep, in device-hours and money (bench/decision/cost.py); a paired test against the best
configuration on the same test examples, Holm-corrected (bench/decision/stats.py); overfitting and
degenerate flags. Then Pareto plots, sweep plots and learning curves (bench/document/figures.py) and a
recommendation: the cheapest configuration whose test accuracy is statistically
indistinguishable from the best (costs within 10% are ties, broken by accuracy);
bench/document/render.py writes the pages.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bench.decision.budget import AgainstGrid, Bill, against_grid, bill, budget_clause, budget_rows
from bench.decision.configs import Config, build_configs
from bench.decision.rows import check_devices, load_runs
from bench.decision.screening import agreement, screening_clause
from bench.decision.selection import (
    Tuned,
    choose,
)
from bench.decision.serving_cost import (
    cheapest_as_accurate,
    pool_serving,
    recommend_at,
)
from bench.decision.stats import (
    holm,
    paired_example_test,
    paired_seed_test,
)
from bench.decision.text import accuracy, p_value, short_checkpoint, thousands, usd
from bench.errors import BenchError
from bench.results.screening import read_screen, screening_path

ALPHA = 0.05
COST_TIE = 0.10  # costs within 10% of each other are one cost: timings of the same run vary by about that


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
    seeds = {c.config_id: {int(r["seed"]): float(r["test_accuracy"]) for r in c.rows} for c in configs}
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
            f"**{choice.label}**: the most accurate configuration ({accuracy(best.accuracy.mean)} test accuracy), and no "
            f"configuration that is statistically as accurate costs less ({usd(choice.cost_usd.mean)} per run).{ties}{tuning}"
        )
    if best.cost_usd.mean == 0:  # a price of 0 was given: there is no cost to compare
        return choice, f"**{choice.label}**: statistically indistinguishable from the best, {best.label}; both cost nothing at the given price.{ties}"
    ratio = choice.cost_usd.mean / best.cost_usd.mean
    return choice, (
        f"**{choice.label}**: test accuracy {accuracy(choice.accuracy.mean)} against the best's {accuracy(best.accuracy.mean)} "
        f"({best.label}), statistically indistinguishable ({choice.vs_best.test} on the same {choice.vs_best.examples:,} "
        f"test examples, Holm-adjusted p {p_value(choice.p_holm, '= ')}), at {usd(choice.cost_usd.mean)} per run: {ratio:.2f}x the best's "
        f"{usd(best.cost_usd.mean)} ({(1 / ratio if ratio else float('inf')):.1f}x cheaper), with {thousands(choice.trainable_params)} "
        f"trainable parameters.{ties}{tuning}"
    )


def _tuning_sentence(config: Config) -> str:
    t = config.tuned
    if t is None or not t.swept:
        return ""
    point = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in t.chosen.values.items())
    halved = len(t.stopped_points)
    among = f"{len(t.points) + halved} points ({halved} stopped early by halving)" if halved else f"{len(t.points)} points"
    return (f" Its {point} was chosen on validation among {among}; the sweep cost "
            f"{usd(config.tuning_cost_usd)} in all ({config.tuning_runs} runs).")


# ----------------------------------------------------------------------------- the document


# ----------------------------------------------------------------------------- the command


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
    screening: list = dataclasses.field(default_factory=list)  # the screen's rows (bench/results/screening.py), [] unscreened
    agreement: dict = dataclasses.field(default_factory=dict)  # weighted tau of the screen's score vs fine-tuned accuracy
    bill: Bill | None = None  # what the budgeted decision cost against the full grid (screen, halving); None: the full grid ran
    budgeted_choice: Config | None = None  # with the full grid's rows in the report too: what the budgeted rows recommend
    against_grid: AgainstGrid | None = None  # that recommendation judged against the grid's, on test

    @property
    def same_as_grid(self) -> bool | None:
        """Does the budgeted decision recommend what the full grid does (None: the grid's rows are not here)?"""
        return None if self.budgeted_choice is None else self.budgeted_choice.config_id == self.choice.config_id

    def __repr__(self) -> str:
        return (f"Decision(recommended {self.choice.label}, best {self.best.label}; {len(self.configs)} configurations, "
                f"{len(self.not_ok)} runs not ok)")

    @property
    def recommended(self) -> Config:
        return self.choice

    def table(self):
        """The chosen configurations as a pandas DataFrame, most accurate first (numbers, not text)."""

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
                             "version?); load it with bench.deploy.export.load_saved")
        return str(folder)


def decide(paths: list[Path], prices: dict | None = None, mixed_devices: bool = False, traffic: float | None = None,
           months: float = 12.0, serve_at: str = "throughput") -> Decision:
    """Rows in, decision out: choose on validation (bench/decision/selection.py), compare the chosen
    configurations on test, recommend: the cheapest to train, or with `traffic` (predictions a
    month, for `months`) the cheapest in total, training + serving (bench/decision/serving_cost.py)."""
    ok, not_ok, stopped = load_runs(paths)  # stopped: halving's, charged to their sweeps
    devices = check_devices(ok, mixed_devices)
    prices = prices or {}
    screen = read_screen(screening_path(paths[0]))
    budget = budget_rows(ok, stopped, screen)
    tuned, configs, best, choice, why = choose_and_recommend(ok, stopped, prices, traffic, months, serve_at)
    if screen:
        why += " " + screening_clause(screen)
    spent, budgeted = None, None
    if budget is not None:
        if budget.full_grid:  # the budgeted decision, from its own rows, beside the grid's
            budgeted = choose_and_recommend(budget.ok, budget.stopped, prices, traffic, months, serve_at)[3]
        spent = bill(budget, ok, screen, configs[0].price.usd_per_hour / 3600)
    judged = against_grid(budgeted, choice, ALPHA, COST_TIE) if budgeted is not None else None
    if spent is not None:
        why += " " + budget_clause(spent, judged)
    curves = {}
    if len({train_size(t) for t in tuned}) > 1:
        for config in build_configs(tuned, prices):
            name = config.first["strategy"] if len({c.first["checkpoint"] for c in configs}) == 1 else (
                f"{short_checkpoint(config.first['checkpoint'])} / {config.first['strategy']}")
            curves.setdefault(name, {})[int(config.first.get("train_examples") or 0)] = config
    return Decision(configs, best, choice, why, tuned, curves, not_ok, devices, traffic, months, serve_at, screen,
                    agreement(screen, configs) if screen else {}, spent, budgeted, judged)


def train_size(tuned) -> int:
    """The train examples a sweep's chosen point trained on (a learning curve has several sizes)."""
    return int(tuned.chosen.rows[0].get("train_examples") or 0)


def choose_and_recommend(ok: list, stopped: list, prices: dict, traffic, months: float, serve_at: str):
    """(every sweep, the chosen configurations at the largest train size, the best, the
    recommendation, why) from these rows: the decision itself, also made on a budgeted subset."""
    stopped = [r for r in stopped if r["run_id"] not in {o["run_id"] for o in ok}]  # finished later: the ok row counts
    try:
        tuned = choose(ok, stopped)
    except ValueError as err:
        raise BenchError(str(err)) from None
    largest = max(train_size(t) for t in tuned)
    configs = sorted(build_configs([t for t in tuned if train_size(t) == largest], prices), key=lambda c: -c.accuracy.mean)
    pool_serving(configs)  # one serving figure per served computation: drift between runs is not a difference
    best = compare_with_best(configs)
    if traffic is None:
        choice, why = recommend(configs, best)
    else:
        choice, why = recommend_at(configs, best, traffic, months, serve_at, COST_TIE)
    return tuned, configs, best, choice, why


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none has a cost <= and an accuracy >=,
    with one of them strictly better. `points` are (cost, accuracy)."""
    front = []
    for i, (cost, correct) in enumerate(points):
        dominated = any(
            c <= cost and a >= correct and (c < cost or a > correct) for j, (c, a) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])
