"""Benchmark: which screen ranks a suite's checkpoints best, against their fine-tuned results.

    python benchmarks/screens.py [--suite offline-models] [--report reports/offline-models.csv]

Scores every checkpoint of the suite by every screen from one frozen forward pass each
(bench/launch/screen.py: LogME and H-score of the pooled last layer, the shrunk H-score of the
layer mean, a linear probe's validation accuracy) and prints, for each screen and for the size
prior (parameter count), scipy's weighted Kendall tau against each checkpoint's best fine-tuned
configuration in `--report` (validation and test accuracy; the report needs every checkpoint
fine-tuned: the full grid, `--no-screen`). The suite's own screen setting does not matter here:
every screen is computed. Also prints each checkpoint's scoring seconds. The scores are the
suite's (same examples, pooling, length), so the taus are what the decision report would show.
`--smoke`: the smoke-sized suite (benchmarks/shipped.py), scores only, unless --report is given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from shipped import ROOT, shipped_suite, write

sys.path.insert(0, str(ROOT))

from bench.cli import show_progress
from bench.decision.decide import decide
from bench.decision.screening import agreement
from bench.errors import BenchError
from bench.inputs.data import load_splits
from bench.launch.screen import ScreenLaunch, score_checkpoints
from bench.results.screening import SCREEN_COLUMNS
from bench.suite.load import load_suite
from bench.train.hardware import resolve_mixed_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="offline-models")
    parser.add_argument("--report", type=Path, default=None, help="a report with every checkpoint fine-tuned "
                        "(default: reports/<suite>.csv; none with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="a few dozen examples: check the script, not the screens")
    args = parser.parse_args()
    report = args.report or (None if args.smoke else ROOT / "reports" / f"{args.suite}.csv")
    folder = Path(tempfile.mkdtemp(prefix="screens-"))
    suite = load_suite(str(write(shipped_suite(args.suite, smoke=args.smoke), folder)))
    data = load_splits(suite.dataset)
    count = min(suite.screen.examples or len(data.splits["train"]), len(data.splits["train"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    show_progress(main_process=True)  # each checkpoint's line as it is scored
    rows = score_checkpoints(suite, data, count, {}, ScreenLaunch(device, resolve_mixed_precision(suite.mixed_precision)))
    names = [*SCREEN_COLUMNS.values(), "parameters"]
    print(f"\n{'checkpoint':<48} {'seconds':>8} " + " ".join(f"{n:>13}" for n in names))
    for row in rows:
        print(f"{row['checkpoint']:<48} {row['seconds']:>8.1f} "
              + " ".join(f"{row[n]:>13.4g}" if row.get(n) is not None else f"{'-':>13}" for n in names))
    if report is None:
        return
    try:
        configs = decide([report]).configs
    except BenchError as error:
        sys.exit(f"error: {report}: {error}")
    taus = agreement([{**row, "score_name": suite.screen.score} for row in rows], configs)
    if not taus["screens"]:
        sys.exit(f"error: {report}: fewer than 3 of the suite's checkpoints have fine-tuned runs; rank needs 3")
    print(f"\nweighted Kendall tau against each checkpoint's best fine-tuned configuration in {report} "
          f"({taus['checkpoints']} checkpoints):")
    for name, tau in sorted(taus["screens"].items(), key=lambda item: -(item[1]["validation"] or item[1]["test"])):
        validation_tau = f"{tau['validation']:.2f}" if tau["validation"] is not None else "-"
        print(f"    {name:<14} validation {validation_tau:>5}   test {tau['test']:.2f}")


if __name__ == "__main__":
    main()
