"""The Python API, for notebooks: the command line's own functions, returning objects.

    import bench
    rows = bench.run_suite("offline", train_size=400, epochs=1, save=True)  # a DataFrame, one row per run
    rows = bench.load_results("reports/offline.csv")                         # the same from reports
    decision = bench.decide("reports/offline.csv", traffic=2e6)              # the decision report's objects
    decision.recommended.label, decision.why, decision.table(), decision.significance()
    pipeline("text-classification", model=decision.model_folder())          # the winner, as transformers loads it

`run_suite` runs what `bench/run.py` runs (the same `bench/launch/suite_run.py`), in this process: a suite name, a
path, or the suite file's content as a dict. Bad input raises `bench.BenchError` (the command
line prints it as one line); a run that fails is a row with its status, as on the command line.
`decide` is the report's decision (bench/decision/decide.py) without the files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.decision.decide import Decision
from bench.decision.decide import decide as decide_from_reports
from bench.errors import BenchError
from bench.launch.suite_run import output_of, suite_of
from bench.launch.suite_run import run_suite as launch
from bench.options import RunOptions, from_keywords
from bench.results.columns import NAMES
from bench.results.store import one_row_per_run, read_results
from bench.train.hardware import device_kind, resolve_mixed_precision


def run_suite(suite, **options):
    """Run a suite (name, path or dict) with the command line's options as keywords, named as
    the flags are (`train_size=400`, `seeds=[1, 2]`, `save=True`, `log_with=["tensorboard"]`,
    `output=...`, `serving=False` for --no-serving; bench/options.py lists them) and return its
    runs' rows as a pandas DataFrame: one row per run of the suite in the report, those this call
    ran and those it found done."""
    run = from_keywords(suite, **options)
    if isinstance(suite, dict) and run.workers:
        raise BenchError("workers run the suite from its file: save the dict as YAML and pass its path")
    launch(run)  # 1 when some run did not finish ok: those are rows with their status, as on the command line
    return suite_rows(run)


def suite_rows(options: RunOptions) -> pd.DataFrame:
    """The report's rows of the suite's cells (as this machine would run them, one process)."""
    suite = suite_of(options)
    output = output_of(options, suite)
    kind = device_kind()
    ids = {cell.run_id() for cell in suite.cells(1, resolve_mixed_precision(suite.mixed_precision), kind)}
    rows = load_results(output) if output.is_file() else empty()
    return rows[rows["run_id"].isin(ids)].reset_index(drop=True)


def load_results(*paths):
    """Reports (CSV files) as one pandas DataFrame: one row per run, as the report counts them
    (an ok row over a failed one, of equals the latest), values typed (JSON columns as Python
    objects), `predictions_file` and `saved_model` as absolute paths."""
    if not paths:
        raise TypeError("load_results() needs at least one report path")
    rows = []
    for path in map(Path, paths):
        if not path.is_file():
            raise BenchError(f"report {path} does not exist; pass the CSV that bench/run.py wrote")
        for row in read_results(path):
            for link in ("predictions_file", "saved_model"):
                if row.get(link):
                    row[link] = str((path.parent / row[link]).resolve())
            rows.append(row)
    kept = list(one_row_per_run(rows).values())
    return pd.DataFrame(kept, columns=NAMES) if kept else empty()


def empty() -> pd.DataFrame:
    return pd.DataFrame(columns=NAMES)


def decide(*paths, traffic: float | None = None, months: float = 12.0, prices: dict | None = None,
           mixed_devices: bool = False, serve_at: str = "throughput") -> Decision:
    """The decision report's decision (bench/decision/decide.py's `Decision`) from one or more reports:
    `.recommended` (a Config), `.why`, `.best`, `.configs`, `.table()`, `.significance()`,
    `.model_folder()`. `traffic`: predictions a month (then the total cost of training and
    serving decides); `prices`: {device name: USD per hour}, as --price."""
    return decide_from_reports([Path(p) for p in paths], prices, mixed_devices, traffic, months, serve_at)
