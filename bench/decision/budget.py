"""What a budgeted decision cost (a suite's `screen:` and `halving:`), against the full grid.

The budgeted decision paid for: the screen's scoring, the runs of the checkpoints it kept, and
the points halving stopped, up to their last rung. The full grid is every checkpoint x strategy
x point x seed to the last epoch. Where the report also holds the grid's own rows (the suite
run again with `--no-screen --no-halving` into the same report), its cost is measured and the
report says whether the budgeted decision is the same; otherwise it is estimated from the
measured runs: a stopped point at its measured seconds per epoch for every epoch, and a
checkpoint the screen dropped at the kept checkpoints' cost of the same strategy, scaled by
parameter count (compute grows with the parameters a token passes through, so this estimate
can err either way; it is labelled as one).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.decision.selection import charged_device_seconds
from bench.decision.stats import PairedTest, paired_example_test
from bench.decision.text import usd
from bench.results.columns import Status


@dataclasses.dataclass
class Budget:
    """The rows of the budgeted decision, and whether the full grid's rows are there too."""
    ok: list  # ok rows of kept checkpoints, without the runs halving stopped
    stopped: list  # the stopped rows (each run's last word before its rung)
    dropped: list[str]  # checkpoints the screen dropped
    full_grid: bool  # the report also holds the dropped checkpoints' and the stopped points' finished runs


@dataclasses.dataclass
class Bill:
    """Device-seconds of the budgeted decision, beside the full grid's."""
    screening_seconds: float
    run_seconds: float
    runs: int
    stopped_seconds: float
    stopped: int
    grid_seconds: float
    grid_runs: int
    grid_measured: bool  # False: estimated (module docstring)
    usd_per_second: float

    @property
    def spent_seconds(self) -> float:
        return self.screening_seconds + self.run_seconds + self.stopped_seconds

    @property
    def fraction(self) -> float:
        """The budgeted decision's share of the full grid's device-seconds."""
        return self.spent_seconds / self.grid_seconds if self.grid_seconds else float("nan")

    def usd(self, seconds: float) -> float:
        return seconds * self.usd_per_second


def budget_rows(ok: list, stopped: list, screen: list) -> Budget | None:
    """The budgeted decision's rows, or None without a screen and with no point stopped (the
    decision was the full grid's). A screen that dropped nothing still cost its scoring."""
    dropped = [r["checkpoint"] for r in screen if not r["kept"]]
    if not screen and not stopped:
        return None
    stopped_ids = {r["run_id"] for r in stopped}
    ok_ids = {r["run_id"] for r in ok}
    kept_ok = [r for r in ok if r["checkpoint"] not in dropped and r["run_id"] not in stopped_ids]
    checkpoints_run = {r["checkpoint"] for r in ok}
    full = all(c in checkpoints_run for c in dropped) and stopped_ids <= ok_ids
    return Budget(kept_ok, [r for r in stopped if r["checkpoint"] not in dropped], dropped, full)


def bill(budget: Budget, ok: list, screen: list, usd_per_second: float) -> Bill:
    """What the budgeted decision spent, and the full grid's cost: measured from `ok` (every
    ok row of the report) when the grid's rows are there, estimated otherwise."""
    runs = sum(charged_device_seconds(r) for r in budget.ok)
    stopped = sum(charged_device_seconds(r) for r in budget.stopped)
    if budget.full_grid:
        grid, grid_runs = sum(charged_device_seconds(r) for r in ok), len(ok)
    else:
        grid, grid_runs = estimated_grid(budget, screen)
    return Bill(sum(r["seconds"] for r in screen), runs, len(budget.ok), stopped, len(budget.stopped), grid, grid_runs,
                budget.full_grid, usd_per_second)


def estimated_grid(budget: Budget, screen: list) -> tuple[float, int]:
    """(device-seconds, runs) of the full grid, estimated from the budgeted runs (module docstring)."""
    whole = [(r, whole_run_seconds(r)) for r in budget.ok + budget.stopped]
    seconds = sum(s for _, s in whole)
    parameters = {r["checkpoint"]: r["parameters"] for r in screen}
    by_strategy: dict[str, dict[str, list]] = {}
    for row, cost in whole:
        by_strategy.setdefault(row["strategy"], {}).setdefault(row["checkpoint"], []).append(cost)
    runs = len(whole)
    for checkpoint in budget.dropped:
        for per_checkpoint in by_strategy.values():
            known = [c for c in per_checkpoint if c in parameters]
            if not known:
                continue
            per_parameter = np.mean([sum(per_checkpoint[c]) / parameters[c] for c in known])
            seconds += per_parameter * parameters[checkpoint]
            runs += round(np.mean([len(per_checkpoint[c]) for c in known]))
    return float(seconds), runs


def whole_run_seconds(row: dict) -> float:
    """A run's device-seconds had it trained every epoch: a stopped point's measured seconds
    per epoch times its epochs; a finished run's own."""
    charged = charged_device_seconds(row)
    if row["status"] == Status.STOPPED and row.get("epochs_run"):
        return charged / row["epochs_run"] * row["epochs"]
    return charged


@dataclasses.dataclass(frozen=True)
class AgainstGrid:
    """The budgeted recommendation against the full grid's, on test: the same configuration, or
    a paired test on the same test examples (McNemar's exact for one seed each) and its cost per
    run against the grid's choice's (within `tie` is the same cost)."""
    label: str
    same: bool
    test: PairedTest | None
    cost_ratio: float
    alpha: float
    tie: float

    @property
    def verdict(self) -> str:
        if self.same:
            return "the same configuration"
        if self.test.p_value < self.alpha:
            return f"{'better' if self.test.difference > 0 else 'worse'} beyond the noise of the test set"
        dearer = self.cost_ratio > 1 + self.tie
        return (f"statistically indistinguishable on test and {'dearer' if dearer else 'no dearer'} "
                f"({self.cost_ratio:.2f}x the grid's choice's cost per run)")

    @property
    def as_good(self) -> bool:
        """What a budgeted decision must be: the grid's answer, or one as accurate at no more cost."""
        return self.same or (self.test.p_value >= self.alpha and self.cost_ratio <= 1 + self.tie)

    def sentence(self) -> str:
        if self.same:
            return "From its own rows, the budgeted decision recommends the same configuration as the full grid."
        return (f"From its own rows, the budgeted decision recommends {self.label}: against the full grid's choice it is "
                f"{self.verdict} ({self.test.test} on {self.test.examples:,} test examples, accuracy difference "
                f"{self.test.difference:+.3f}, p {self.test.p_value:.3g}).")


def against_grid(budgeted, grid, alpha: float, tie: float) -> AgainstGrid:
    """`budgeted`, `grid`: the two recommended Configs (bench/decision/configs.py)."""
    if budgeted.config_id == grid.config_id:
        return AgainstGrid(budgeted.label, True, None, 1.0, alpha, tie)
    if budgeted.correct is None or grid.correct is None:
        raise ValueError("the budgeted and the grid's recommendations have no per-example test predictions to compare")
    test = paired_example_test(budgeted.correct, grid.correct)
    return AgainstGrid(budgeted.label, False, test, budgeted.cost_usd.mean / grid.cost_usd.mean, alpha, tie)


def budget_clause(bill_: Bill, judged: AgainstGrid | None) -> str:
    """The recommendation's word on what deciding cost and, where the grid's rows are here too,
    how the budgeted recommendation compares with the grid's."""
    grid = "the full grid" + ("" if bill_.grid_measured else "'s estimated")
    text = (f"Deciding cost {seconds(bill_.spent_seconds)} device-s ({usd(bill_.usd(bill_.spent_seconds))}), "
            f"{bill_.fraction:.0%} of {grid} {seconds(bill_.grid_seconds)} device-s ({usd(bill_.usd(bill_.grid_seconds))}); "
            "see Cost.")
    if judged is not None:
        text += (" The full grid's rows are in this report too, and they reach the same recommendation." if judged.same else
                 f" **The full grid's rows are in this report too, and they recommend differently**: from its own rows "
                 f"the budgeted decision recommends {judged.label}, {judged.verdict} (see Cost).")
    return text


def seconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
