"""Benchmark: the `offline` suite cell-parallel (`--workers 2`, one core each) against the
sequential run (one process, both cores), wall time of the whole suite.

    python benchmarks/workers.py [--rounds 2] [--data-dir ../shared/data/imdb] [--smoke]

At a small size (400 train / 200 validation / 200 test reviews, 1 epoch), one call alternates
the two (A B B A for 2 rounds, so drift of a shared machine hits both alike), each into a fresh
report, and prints each wall time end to end (start-up, loading, tokenizing, training, test),
the ratio of the means, and whether both wrote the same run_ids. `--smoke`: one round at a few
dozen reviews (benchmarks/shipped.py), full fine-tuning and the head sweep only, in seconds.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shipped import ROOT, shipped_suite, write

SIZE = ["--train-size", "400", "--validation-size", "200", "--eval-size", "200", "--epochs", "1"]


def run_suite(suite: Path, output: Path, workers: int | None, smoke: bool) -> float:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(output)]
    command += ["--epochs", "1"] if smoke else SIZE
    command += ["--workers", str(workers)] if workers else []
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return seconds


def rows(path: Path) -> dict:
    with path.open() as f:
        return {r["run_id"]: r for r in csv.DictReader(f)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument("--smoke", action="store_true", help="one round at a few dozen reviews: check the script, not the speed")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    order = [kind for n in range(rounds) for kind in (("seq", "workers") if n % 2 == 0 else ("workers", "seq"))]
    times = {"seq": [], "workers": []}
    with tempfile.TemporaryDirectory() as folder:
        raw = shipped_suite("offline", args.data_dir, args.smoke)
        if args.smoke:  # full fine-tuning (a task of its own) and the head sweep (one task sharing features)
            raw["strategies"] = [s for s in raw["strategies"] if s["name"] in ("full", "mlp-head-mean")]
        suite = write(raw, Path(folder))
        for n, kind in enumerate(order):
            output = Path(folder) / f"{kind}-{n}.csv"
            seconds = run_suite(suite, output, 2 if kind == "workers" else None, args.smoke)
            times[kind].append(seconds)
            print(f"{kind:8} {seconds:7.1f} s  ({len(rows(output))} runs)", flush=True)
        first = {kind: rows(Path(folder) / f"{kind}-{order.index(kind)}.csv") for kind in times}
        same_ids = set(first["seq"]) == set(first["workers"])
        statuses = {r["status"] for table in first.values() for r in table.values()}
        accuracy_gaps = [abs(float(first["seq"][k]["test_accuracy"]) - float(first["workers"][k]["test_accuracy"]))
                         for k in first["seq"] if k in first["workers"]]
    seq, par = statistics.mean(times["seq"]), statistics.mean(times["workers"])
    print(f"\nsequential (1 process, 2 threads): {', '.join(f'{t:.1f}' for t in times['seq'])} s, mean {seq:.1f} s")
    print(f"--workers 2 (1 thread each):       {', '.join(f'{t:.1f}' for t in times['workers'])} s, mean {par:.1f} s")
    print(f"speed-up of the suite's wall time: {seq / par:.2f}x")
    print(f"same run_ids: {same_ids}; statuses: {sorted(statuses)}; largest test-accuracy gap between the two: "
          f"{max(accuracy_gaps):.4f} (threads differ: 2 vs 1, so float sums differ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
