"""Benchmark: does a budgeted decision (screen + halving) reach the full grid's, and at what share of its cost?

    python benchmarks/budget.py [--suite offline-models] [--output reports/offline-models.csv]

1. The budgeted launch: the suite as shipped (its `screen:` and `halving:`), into the report.
2. The full grid on the same report (`--no-screen --no-halving`): every run the budgeted launch
   did not finish (the dropped checkpoints', the stopped points' from the start); the runs it
   finished are the grid's own (same run_ids, same rows), so they are not trained twice.
3. The decision report on it: the budgeted decision, made from its own rows (screening, finished
   runs, stopped points), beside the full grid's, whose cost is now measured.

Prints: each recommendation and whether they agree; the budgeted device-seconds (scoring + runs +
stopped points) against the full grid's and their ratio; each launch's wall time (a rerun on a
finished report trains nothing and prints the same figures, with the no-op launches' times); in
how many sweeps halving chose the grid's point; and the
weighted Kendall tau (scipy.stats.weightedtau) between the screen's score and the checkpoints'
fine-tuned validation and test accuracies (each at its chosen configuration). Device-seconds are
what the report charges: training (with pauses at rungs) and validation, not loading or tests.
Both launches run on this machine, one after the other; nothing else should run beside them.
`--smoke`: the suite's first three checkpoints and first strategy at a few dozen reviews, 2 epochs,
its sweep at two points (benchmarks/shipped.py), into a throwaway report unless --output is given: seconds,
not a measurement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from shipped import ROOT, shipped_suite, write

sys.path.insert(0, str(ROOT))

from bench.decision.budget import budget_rows
from bench.decision.decide import decide
from bench.decision.rows import load_runs
from bench.decision.selection import choose
from bench.decision.text import short_checkpoint
from bench.errors import BenchError
from bench.launch.halving import replay, sweep_points
from bench.results.store import read_results
from bench.run import main as launch
from bench.suite.load import load_suite
from bench.train.hardware import device_kind, resolve_mixed_precision


def run(*args: str) -> float:
    """bench/run.py with these arguments, in this process (its imports paid once); its wall time."""
    start = time.perf_counter()
    code = launch(list(args))
    if code != 0:
        sys.exit(f"bench/run.py {' '.join(args)} ended with {code}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="offline-models")
    parser.add_argument("--output", type=Path, default=None, help="default: reports/<suite>.csv (with --smoke: a "
                        "temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="a few dozen reviews: check the script, not the decision")
    args = parser.parse_args()
    suite, output = args.suite, args.output or ROOT / "reports" / f"{args.suite}.csv"
    if args.smoke:
        folder = Path(tempfile.mkdtemp(prefix="budget-smoke-"))
        raw = shipped_suite(args.suite, smoke=True)
        raw["checkpoints"] = raw["checkpoints"][:3]  # the fewest a rank correlation is computed over
        raw["strategies"] = raw["strategies"][:1]
        raw["defaults"]["epochs"] = 2  # one rung (epoch 1) and the end
        suite = str(write(raw, folder))
        output = args.output or folder / f"{args.suite}.csv"
    budgeted_wall = run("--suite", suite, "--output", str(output))
    grid_wall = run("--suite", suite, "--output", str(output), "--no-screen", "--no-halving")
    try:
        decision = decide([output])
    except BenchError as error:
        sys.exit(f"error: {output}: {error}")
    bill, screen = decision.bill, decision.screening
    budget_choice = decision.budgeted_choice
    kept = [s["checkpoint"] for s in screen if s["kept"]]
    print(f"\ncheckpoints: {len(screen)}; kept by the screen: {len(kept)}")
    print(f"budgeted:  scoring {bill.screening_seconds:,.0f} s + {bill.runs} finished runs {bill.run_seconds:,.0f} s + "
          f"{bill.stopped} stopped points {bill.stopped_seconds:,.0f} s = {bill.spent_seconds:,.0f} device-s "
          f"(launch wall time {budgeted_wall:,.0f} s); recommends {budget_choice.label}")
    print(f"full grid: {bill.grid_runs} runs, {bill.grid_seconds:,.0f} device-s, measured (the rest of it: launch wall "
          f"time {grid_wall:,.0f} s); recommends {decision.choice.label}")
    judged = decision.against_grid
    print(f"budgeted recommendation against the grid's: {judged.verdict}"
          + ("" if judged.same else f" ({judged.test.test}, p {judged.test.p_value:.3g}, difference {judged.test.difference:+.3f})")
          + f"; {'AS GOOD' if judged.as_good else 'NOT AS GOOD'}; device-seconds ratio budgeted / full: {bill.fraction:.2f}")
    ok, _, stopped = load_runs([output])
    budget = budget_rows(ok, stopped, screen)
    grid_points = {t.tuning_id: t.chosen for t in choose(ok)}
    halved = choose(budget.ok, budget.stopped)
    same = [t for t in halved if grid_points[t.tuning_id].config_id == t.chosen.config_id]
    print(f"sweeps of the kept checkpoints: halving chose the full grid's point in {len(same)} of {len(halved)}")
    for line in sweep_lines(load_suite(suite), read_results(output), halved, grid_points):
        print(f"    {line}")
    tau = decision.agreement
    if tau.get("test") is not None:
        print(f"weighted Kendall tau over {tau['checkpoints']} checkpoints (validation / test), {tau['chosen']} screened:")
        for name, taus in sorted(tau["screens"].items(), key=lambda item: -(item[1]["validation"] or 0)):
            print(f"    {name:<14} {taus['validation'] or float('nan'):.2f} / {taus['test']:.2f}")


def sweep_lines(suite, rows: list[dict], halved: list, grid_points: dict) -> list[str]:
    """Per halved sweep: its rungs as decided (epoch, points that went on, the plain cut's size),
    the points the noise rule kept beyond the plain cut, and whether it kept the grid's point."""
    by_run: dict[str, list] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    cells = suite.cells(1, resolve_mixed_precision(suite.mixed_precision), device_kind())  # as the launch made them
    lines = []
    for tuned in halved:
        cell = next((c for c in cells if c.tuning_id() == tuned.tuning_id and suite.rungs(c)), None)
        if cell is None:
            continue
        rungs = list(replay(sweep_points(cell, cells), by_run, suite.rungs(cell), suite.halving, cell.hparams.epochs))
        extra = sum(len(r.decision.continuing) - len(r.decision.cut) for r in rungs if r.decision)
        steps = ", ".join(f"epoch {r.at}: {len(r.decision.continuing)} of {len(r.figures)} went on (cut {len(r.decision.cut)})"
                          for r in rungs if r.decision)
        kept = grid_points[tuned.tuning_id].config_id == tuned.chosen.config_id
        lines.append(f"{short_checkpoint(cell.checkpoint)} {cell.strategy.name}: "
                     f"{steps or 'no rung decided (no point beat the majority class before the last epoch)'}; "
                     f"{extra} point-rung(s) kept beyond the plain cut; chose {tuned.chosen.values}, the grid "
                     f"{grid_points[tuned.tuning_id].values}: {'same' if kept else 'DIFFERENT'}")
    return lines


if __name__ == "__main__":
    main()
