"""Benchmark: does screening checkpoints reach the full grid's decision, and at what share of its cost?

    python benchmarks/budget.py [--suite offline-models] [--output reports/offline-models.csv]

1. The full grid: every checkpoint x strategy of the suite (`--no-screen`), into the report
   (a rerun resumes: finished runs are kept).
2. The screen alone, on the same report: each checkpoint's frozen features scored, the verdicts
   written beside it; the kept checkpoints' runs are already there, so nothing trains.
3. The budgeted decision is the decision on the kept checkpoints' rows: the very runs the
   budgeted suite would have made (a screen does not change a run, so its rows are the same
   run_ids). Its cost: the scoring seconds plus those runs' charged device-seconds; the full
   grid's: every run's. Both from the same rows of one machine.

Prints: the recommendation of each and whether they agree, the device-seconds of each and their
ratio, and the weighted Kendall tau (scipy.stats.weightedtau) between the score and the
checkpoints' fine-tuned validation and test accuracies (each at its best configuration).
Deviation from running the suite twice: the budgeted runs are not repeated, they are the full
grid's own rows of the kept checkpoints (the same computation; repeating them would measure
timing noise, not the screen).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.decision.decide import decide  # noqa: E402
from bench.decision.screening import agreement  # noqa: E402
from bench.decision.selection import charged_device_seconds  # noqa: E402
from bench.results.screening import read_screen, screening_path  # noqa: E402
from bench.results.store import one_row_per_run, read_results  # noqa: E402


def run(*args: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), *args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"bench/run.py {' '.join(args)} ended with {result.returncode}")


def kept_rows_report(report: Path, kept: set[str], folder: Path) -> Path:
    """A copy of the report holding the kept checkpoints' rows, beside links to its files."""
    with report.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if row["checkpoint"] in kept]
        header = reader.fieldnames
    copy = folder / report.name
    with copy.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    for sibling in report.parent.glob(f"{report.stem}.predictions"):
        (folder / sibling.name).symlink_to(sibling.resolve())
    return copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="offline-models")
    parser.add_argument("--output", type=Path, default=ROOT / "reports" / "offline-models.csv")
    args = parser.parse_args()
    run("--suite", args.suite, "--output", str(args.output), "--no-screen")
    run("--suite", args.suite, "--output", str(args.output))
    screen = read_screen(screening_path(args.output))
    kept = {row["checkpoint"] for row in screen if row["kept"]}
    rows = [r for r in one_row_per_run(read_results(args.output)).values() if r["status"] == "ok"]  # reruns: the latest
    full = decide([args.output])
    with tempfile.TemporaryDirectory() as folder:
        budgeted = decide([kept_rows_report(args.output, kept, Path(folder))])
    grid_seconds = sum(charged_device_seconds(r) for r in rows)
    scoring = sum(r["seconds"] for r in screen)
    budget_seconds = scoring + sum(charged_device_seconds(r) for r in rows if r["checkpoint"] in kept)
    tau = agreement(screen, full.configs)
    print(f"checkpoints: {len(screen)}; kept by the screen: {len(kept)} ({', '.join(sorted(kept))})")
    print(f"full grid:  {len(rows)} runs, {grid_seconds:,.0f} device-s; recommends {full.choice.label}")
    print(f"budgeted:   scoring {scoring:,.0f} s + {sum(r['checkpoint'] in kept for r in rows)} runs = {budget_seconds:,.0f} device-s; "
          f"recommends {budgeted.choice.label}")
    print(f"same recommendation: {'yes' if budgeted.choice.config_id == full.choice.config_id else 'NO'}; "
          f"device-seconds ratio budgeted / full: {budget_seconds / grid_seconds:.2f}")
    print(f"weighted Kendall tau of {screen[0]['score_name']} over {tau['checkpoints']} checkpoints: "
          f"validation {tau['validation']:.2f}, test {tau['test']:.2f}")


if __name__ == "__main__":
    main()
