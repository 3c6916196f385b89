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
`--smoke`: the suite's first three checkpoints and first strategy at a few dozen reviews, its sweep
at two points (benchmarks/shipped.py), into a throwaway report unless --output is given: seconds,
not a measurement.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipped import ROOT, shipped_suite, write

sys.path.insert(0, str(ROOT))

from bench.decision.budget import budget_rows  # noqa: E402
from bench.decision.decide import decide  # noqa: E402
from bench.decision.rows import load_runs  # noqa: E402
from bench.decision.selection import choose  # noqa: E402
from bench.errors import BenchError  # noqa: E402


def run(*args: str) -> float:
    """bench/run.py with these arguments; its wall time."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), *args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"bench/run.py {' '.join(args)} ended with {result.returncode}")
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
    print(f"same recommendation: {'yes' if decision.same_as_grid else 'NO'}; device-seconds ratio budgeted / full: "
          f"{bill.fraction:.2f}")
    ok, _, stopped = load_runs([output])
    budget = budget_rows(ok, stopped, screen)
    grid_points = {t.tuning_id: t.chosen for t in choose(ok)}
    halved = choose(budget.ok, budget.stopped)
    same = [t for t in halved if grid_points[t.tuning_id].config_id == t.chosen.config_id]
    print(f"sweeps of the kept checkpoints: halving chose the full grid's point in {len(same)} of {len(halved)}"
          + "".join(f"; {t.chosen.rows[0]['checkpoint'].rsplit('/', 1)[-1]} {t.chosen.rows[0]['strategy']}: "
                    f"{t.chosen.values} against the grid's {grid_points[t.tuning_id].values}"
                    for t in halved if t not in same))
    tau = decision.agreement
    if tau.get("test") is not None:
        print(f"weighted Kendall tau of {screen[0]['score_name']} over {tau['checkpoints']} checkpoints: "
              f"validation {tau['validation']:.2f}, test {tau['test']:.2f}")


if __name__ == "__main__":
    main()
