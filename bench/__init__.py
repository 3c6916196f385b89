"""finetune-bench: suites of pretrained checkpoints x fine-tuning strategies, one CSV row per run.

The path through the code follows the file names:
    suites/<name>.yaml -> bench/suite.py (cells) -> bench/data.py + bench/checkpoints.py
    -> bench/strategies.py (model to train) -> bench/train.py (one run) -> bench/results_csv.py (CSV row)
    -> bench/report.py (the decision: seeds, significance, cost, Pareto plots)
`bench/run.py` is the command line that strings them together (`bench/pool.py` runs several
cells at once with `--workers`); `bench/compare.py` gates a new
report against a reference; `bench/merge.py` combines shard reports; `bench/export.py` writes
trained runs in transformers' and peft's formats; `bench/tracking.py` feeds experiment trackers.

From Python (bench/api.py): `bench.run_suite(suite, **overrides)` -> DataFrame of rows,
`bench.load_results(*csv)` -> DataFrame, `bench.decide(*csv)` -> the report's Decision.
"""

import argparse
import sys


class BenchError(Exception):
    """A problem with the user's input (suite, data, checkpoint). Reported as one line, exit code 2."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to many lines),
    or its type name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class OneLineParser(argparse.ArgumentParser):
    """Option errors as one `error:` line and exit code 2, like every other bad input."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def progress_interval() -> float:
    """Seconds between progress-bar updates: live on a terminal; every 10 s when the output is
    a file (a SLURM log, a worker's log), so a log holds lines, not thousands of bar redraws."""
    return 0.1 if sys.stderr.isatty() else 10.0


def run_suite(suite, serving: bool = True, **overrides):
    """Run a suite from Python; see bench/api.py."""
    from bench.api import run_suite as run

    return run(suite, serving, **overrides)


def load_results(*paths):
    """Reports as one DataFrame, one row per run; see bench/api.py."""
    from bench.api import load_results as load

    return load(*paths)


def decide(*paths, **options):
    """The decision report's Decision from reports; see bench/api.py."""
    from bench.api import decide as decision

    return decision(*paths, **options)
