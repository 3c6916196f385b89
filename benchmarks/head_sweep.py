"""Benchmark: a learning-rate sweep of a frozen-backbone head costs little more than one run.

    python benchmarks/head_sweep.py [--data-dir ../shared/data/imdb]

Runs, one after the other in one call (the same machine state for both), two suites built from
the `offline` suite's `mlp-head-mean` strategy (all-MiniLM-L6-v2, 2,000 train / 500 validation /
1,000 test IMDB reviews, 2 epochs):
- one run: one learning rate, one seed;
- the sweep: 4 learning rates x 3 seeds = 12 runs.
Every cell of the sweep reuses the backbone features the first one computed (bench/train/loop.py,
`shared_features`). Prints the wall time of each command end to end (loading, tokenizing,
training, validation, test, and the serving measurement the suite asks for after every run)
and their ratio; the target is a ratio of at most 2. Serving is timed once per served
computation (bench/deploy/serving.py): every head of the sweep serves the same MiniLM and head,
so the sweep times it once and its other runs carry that timing; the lines say how often
serving was timed and what it took. Neither suite is halved (the `offline` suite's `halving:`
is dropped): the sweep's cost here is what sharing the frozen features saves, every point
trained to the end. `--smoke`: the same two suites at a few dozen reviews, the sweep 2 x 2, in seconds.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipped import IMDB, ROOT, shipped_suite, write


def suite(folder: Path, name: str, learning_rates: list[float], seeds: list[int], data_dir: str, smoke: bool) -> Path:
    """The `offline` suite's MLP head alone, at these learning rates and seeds, not halved."""
    base = shipped_suite("offline", data_dir, smoke)
    head = next(s for s in base["strategies"] if s["name"] == "mlp-head-mean")
    head.pop("sweep", None)
    if len(learning_rates) > 1:
        head["sweep"] = {"learning_rate": learning_rates}
    else:
        head["learning_rate"] = learning_rates[0]
    base.pop("halving", None)
    base["strategies"] = [head]
    base["defaults"]["seeds"] = seeds
    return write(base, folder, name)


def timed_run(path: Path, output: Path) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(path), "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{path.name} failed:\n{result.stderr[-2000:]}")
    with output.open() as f:
        return seconds, list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(IMDB))
    parser.add_argument("--smoke", action="store_true", help="a few dozen reviews: check the script, not the speed")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="head-sweep-"))
    one_seconds, one = timed_run(suite(folder, "head-one", [1e-3], [42], args.data_dir, args.smoke), folder / "one.csv")
    rates, seeds = ([3e-4, 1e-3], [42, 43]) if args.smoke else ([3e-4, 1e-3, 3e-3, 1e-2], [42, 43, 44])
    sweep_seconds, sweep = timed_run(suite(folder, "head-sweep", rates, seeds, args.data_dir, args.smoke), folder / "sweep.csv")
    cached = sum(1 for r in sweep if float(r["cache_seconds"] or 0) > 0)
    print(f"one run:           {one_seconds:7.1f} s wall ({len(one)} run; train {float(one[0]['train_seconds']):.1f} s, "
          f"cache {float(one[0]['cache_seconds']):.1f} s)")
    print(f"{len(rates)} points x {len(seeds)} seeds: {sweep_seconds:7.1f} s wall ({len(sweep)} runs; frozen features computed by {cached} of them; "
          f"train seconds summed {sum(float(r['train_seconds']) for r in sweep):.1f})")
    for name, rows in (("one run", one), ("the sweep", sweep)):
        timed = [r for r in rows if r.get("serving_measured_by") == r["run_id"]]
        print(f"{name}: serving timed {len(timed)} time(s) ({sum(float(r['serving_seconds'] or 0) for r in timed):.1f} s), "
              f"carried by {sum(1 for r in rows if r.get('serving_measured_by') not in (None, '', r['run_id']))} run(s); "
              f"serving step of all runs {sum(float(r['serving_seconds'] or 0) for r in rows):.1f} s")
    print(f"ratio: {sweep_seconds / one_seconds:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
