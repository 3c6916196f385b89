"""A suite's launch, whatever starts it (bench/run.py, `bench.run_suite`): the suite with the
launch's options applied, the checks that need no model, then the cells, here or on a pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.inputs.preflight import go_offline_if_hub_unreachable
from bench.launch.pool import run_with_workers
from bench.launch.sequential import quiet_bars_when_logging, run_here
from bench.options import RunOptions, suite_overrides
from bench.suite.load import Suite, available_suites, load_suite
from bench.train.tracking import check_folder, check_trackers, tracking_folder

RUNS_DIR = Path(__file__).resolve().parents[2] / "runs"  # a user's reports; committed examples live in reports/


def run_suite(options: RunOptions, suite: Suite | None = None) -> int:
    """Run what the options ask (`suite`: the options' suite, when the caller loaded it
    already); 0 when every run finished ok, 1 when some did not (their rows say why). Bad input
    raises BenchError before anything is written."""
    if options.list:
        for name in available_suites():
            print(f"{name:14} {suite_of(options, name).description}")
        return 0
    suite = suite or suite_of(options)
    if not options.screen:
        suite = dataclasses.replace(suite, screen=None)
    if not options.halving:
        suite = dataclasses.replace(suite, halving=None)
    if suite.tracking.log_with:
        check_trackers(suite.tracking.log_with)
    go_offline_if_hub_unreachable(suite)
    quiet_bars_when_logging()
    output = output_of(options, suite)
    if suite.tracking.log_with and not options.dry_run:
        check_folder(tracking_folder(suite.tracking, output))
    if options.workers and not options.dry_run:
        return run_with_workers(options, suite, output)
    return run_here(options, suite, output)


def suite_of(options: RunOptions, name=None) -> Suite:
    """The suite (`name`, or the options' own) with the options' overrides applied."""
    return load_suite(options.suite if name is None else name, suite_overrides(options))


def output_of(options: RunOptions, suite: Suite) -> Path:
    """The report this launch appends to: --output, or runs/<suite>.csv."""
    return Path(options.output) if options.output else RUNS_DIR / f"{suite.name}.csv"
