"""The Python API, for notebooks: the command line's own functions, returning objects.

    import bench
    rows = bench.run_suite("offline", train_size=400, epochs=1, save=True)  # a DataFrame, one row per run
    rows = bench.load_results("reports/offline.csv")                         # the same from reports
    decision = bench.decide("reports/offline.csv", traffic=2e6)              # the decision report's objects
    decision.recommended.label, decision.why, decision.table(), decision.significance()
    pipeline("text-classification", model=decision.model_folder())          # the winner, as transformers loads it

`run_suite` runs what `bench/run.py` runs (the same `run`), in this process: a suite name, a
path, or the suite file's content as a dict. Bad input raises `bench.BenchError` (the command
line prints it as one line); a run that fails is a row with its status, as on the command line.
`decide` is `bench/report.py`'s decision without the files.
"""

from __future__ import annotations

from pathlib import Path

from bench import BenchError

# keyword -> the command-line flag it stands for (True/False for flags without a value)
OVERRIDES = {
    "train_size": "--train-size", "eval_size": "--eval-size", "validation_size": "--validation-size",
    "epochs": "--epochs", "seeds": "--seeds", "mixed_precision": "--mixed-precision", "data_dir": "--data-dir",
    "output": "--output", "save": "--save", "force": "--force", "log_with": "--log-with", "log_dir": "--log-dir",
    "workers": "--workers", "runs_per_gpu": "--runs-per-gpu", "shard": "--shard",
}


def run_suite(suite, serving: bool = True, **overrides):
    """Run a suite (name, path or dict) with the command line's overrides as keywords
    (`train_size=400`, `seeds=[1, 2]`, `save=True`, `log_with=["tensorboard"]`, `output=...`;
    `serving=False` is --no-serving) and return its runs' rows as a pandas DataFrame: one row
    per run of the suite in the report, those this call ran and those it found done."""
    from bench.run import parse_args, run

    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise TypeError(f"run_suite() got an unexpected keyword '{unknown[0]}'; it takes: serving, {', '.join(OVERRIDES)}")
    argv = ["--suite", suite if isinstance(suite, (str, Path)) else "(dict)", *_flags(overrides)]
    if not serving:
        argv.append("--no-serving")
    args = _parsed(parse_args, [str(a) for a in argv])
    if isinstance(suite, dict):
        if args.workers:
            raise BenchError("workers run the suite from its file: save the dict as YAML and pass its path")
        args.suite = suite
    run(args)  # 1 when some run did not finish ok: those are rows with their status, as on the command line
    return suite_rows(args)


def _flags(overrides: dict) -> list:
    argv = []
    for key, value in overrides.items():
        flag = OVERRIDES[key]
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, (list, tuple)):
            argv += [flag, *value]
        elif value is not None:
            argv += [flag, value]
    return argv


def _parsed(parse_args, argv: list):
    """The command line's parsing, its one-line errors raised instead of exiting."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse_args(argv)
    except SystemExit:
        raise BenchError(err.getvalue().strip().removeprefix("error: ").removesuffix(" (see --help)")) from None


def suite_rows(args):
    """The report's rows of the suite's cells (as this machine would run them, one process)."""
    import torch

    from bench.hardware import resolve_mixed_precision
    from bench.run import REPORTS_DIR, load_suite_from

    suite = load_suite_from(args, args.suite)
    output = Path(args.output) if args.output else REPORTS_DIR / f"{suite.name}.csv"
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    ids = {cell.run_id() for cell in suite.cells(1, resolve_mixed_precision(suite.mixed_precision), kind)}
    rows = load_results(output) if output.is_file() else _empty()
    return rows[rows["run_id"].isin(ids)].reset_index(drop=True)


def load_results(*paths):
    """Reports (CSV files) as one pandas DataFrame: one row per run, as the report counts them
    (an ok row over a failed one, of equals the latest), values typed (JSON columns as Python
    objects), `predictions_file` and `saved_model` as absolute paths."""
    import pandas as pd

    from bench.results_csv import COLUMNS, one_row_per_run, read_results

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
    return pd.DataFrame(kept, columns=list(COLUMNS)) if kept else _empty()


def _empty():
    import pandas as pd

    from bench.results_csv import COLUMNS

    return pd.DataFrame(columns=list(COLUMNS))


def decide(*paths, traffic: float | None = None, months: float = 12.0, prices: dict | None = None,
           mixed_devices: bool = False, serve_at: str = "throughput"):
    """The decision report's decision (bench/report.py's `Decision`) from one or more reports:
    `.recommended` (a Config), `.why`, `.best`, `.configs`, `.table()`, `.significance()`,
    `.model_folder()`. `traffic`: predictions a month (then the total cost of training and
    serving decides); `prices`: {device name: USD per hour}, as --price."""
    from bench.report import decide as report_decision

    return report_decision([Path(p) for p in paths], prices, mixed_devices, traffic, months, serve_at)
