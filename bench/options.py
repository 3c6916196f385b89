"""The options of a launch, declared once: `RunOptions`.

Each field is one option, with its flag, help and what it does. From this one declaration come
the command line's flags (`parser`), the Python API's keywords (`bench.run_suite(suite,
**keywords)`), the command line a `--workers` pool gives each worker (`worker_argv`), and the
suite overrides (`suite_overrides`): a flag added here reaches all four, so a pool's runs cannot
silently differ from the sequential ones.

A field's `where` says what kind of option it is:
- `dataset` / `defaults` / `serving` / `tracking`: a suite override, written into that section
  of the suite file before it is validated (so it is checked like the file's own values);
- `launch`: how this launch runs (report path, --force, --save, ...), passed on to workers;
- `pool`: how a pool is laid out (--workers, --runs-per-gpu, --shard), not passed on;
- `command`: what the command does (--list, --dry-run), not passed on.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench.cli import OneLineParser
from bench.errors import BenchError
from bench.generated import fill_block
from bench.suite.schema import MIXED_PRECISIONS


def option(default, help: str, where: str, key: str | None = None, **argparse_kwargs):
    """A RunOptions field: `key` is its name in the suite section it overrides (default: the
    field's name); `argparse_kwargs` shape its flag (type, nargs, choices, metavar)."""
    meta = {"help": help, "where": where, "key": key, "argparse": argparse_kwargs}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What a launch runs and how: the command line's flags and the API's keywords."""

    suite: object = option(None, "a suite name from suites/ or a path to a suite YAML (the API also takes the file's "
                           "content as a dict)", "command")
    list: bool = option(False, "list the available suites and exit", "command")
    dry_run: bool = option(False, "print the cells and their parameter counts, train nothing", "command")
    output: str | None = option(None, "CSV report to append to (default: runs/<suite>.csv)", "launch")
    force: bool = option(False, "rerun cells that already have an ok row in the report", "launch")
    save: bool = option(False, "export each finished run's model to <report>.models/<run_id>/ in transformers' or "
                        "peft's format (bench/deploy/export.py; pipeline() loads it, bench/predict.py too)", "launch")
    data_dir: str | None = option(None, "folder with <split>.csv files replacing the suite's dataset source "
                                  "(default: $BENCH_DATA_DIR if set)", "dataset")
    label_names: list | None = option(None, "what each class is called, in label-id order (sorted label values): "
                                      "replaces the suite's dataset.label_names", "dataset", nargs="+", metavar="NAME")
    train_size: int | None = option(None, "override the suite's number of training examples", "dataset", type=int)
    validation_size: int | None = option(None, "override the suite's number of validation examples (carved from "
                                         "train, or sampled from its validation split)", "dataset", type=int)
    eval_size: int | None = option(None, "override the suite's number of test (eval split) examples", "dataset",
                                   type=int)
    epochs: int | None = option(None, "override every strategy's epochs", "defaults", type=int)
    seeds: list | None = option(None, "override the suite's seeds", "defaults", type=int, nargs="+")
    mixed_precision: str | None = option(None, "override the suite's mixed precision", "defaults",
                                         choices=MIXED_PRECISIONS)
    serving: bool = option(True, "skip the serving measurement after each run (latency, throughput, memory: "
                           "bench/deploy/serving.py; `serving=False` in the API; the suite's serving.measure: false "
                           "turns it off for good)", "serving", key="measure")
    screen: bool = option(True, "fine-tune every checkpoint, the whole grid, whatever the suite's screen: section "
                          "says (bench/launch/screen.py)", "launch")
    halving: bool = option(True, "train every sweep point to the last epoch, whatever the suite's halving: section "
                           "says (bench/launch/halving.py)", "launch")
    log_with: list | None = option(None, "record every run in these experiment trackers (tensorboard, mlflow, "
                                   "wandb, ...: accelerate's; replaces the suite's tracking.log_with; "
                                   "bench/train/tracking.py)", "tracking", nargs="+", metavar="TRACKER")
    log_dir: str | None = option(None, "where trackers keep local records (default: <report stem>.tracking/ beside "
                                 "the report)", "tracking", key="dir")
    shard: str | None = option(None, "I/N: run only the I-th of N fixed parts of the suite's cells (1 <= I <= N), "
                               "e.g. one per SLURM array task; combine the reports with bench/merge.py", "pool")
    workers: int | None = option(None, "run N cells at once, each in its own process on one GPU (or an equal share "
                                 "of the CPU cores); every run is the run the sequential path makes (on CPU with its "
                                 "share of the threads: float sums in another order; bench/launch/pool.py)", "pool", type=int)
    runs_per_gpu: int = option(1, "with --workers: pack K runs onto each GPU (small models leave a GPU mostly idle "
                               "at batch 16)", "pool", type=int)
    run_ids: list | None = option(None, argparse.SUPPRESS, "pool")  # a worker's task: these run_ids, in suite order

    def __post_init__(self):
        for field in ("train_size", "validation_size", "eval_size", "epochs", "workers", "runs_per_gpu"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise BenchError(f"{flag(field)} must be positive")
        if self.shard is not None:
            self.shard_part()  # checked here, used by the launch
        if not self.list and self.suite is None:
            raise BenchError("--suite is required (or --list)")

    def shard_part(self) -> tuple[int, int] | None:
        """(I, N) of `--shard I/N`, or None."""
        if self.shard is None:
            return None
        index, _, count = str(self.shard).partition("/")
        if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            raise BenchError(f"--shard must be I/N with 1 <= I <= N, got {self.shard!r}")
        return int(index), int(count)


FIELDS = {field.name: field for field in dataclasses.fields(RunOptions)}
SUITE_SECTIONS = ("dataset", "defaults", "serving", "tracking")


def flag(name: str) -> str:
    """The command-line flag of a field: `--train-size`; `--no-serving` for the switch that is on by default."""
    field = FIELDS[name]
    return f"--no-{name.replace('_', '-')}" if field.default is True else f"--{name.replace('_', '-')}"


def parser() -> OneLineParser:
    """The command line of bench/run.py, made from RunOptions."""
    out = OneLineParser(description="Run a suite: every checkpoint x strategy x seed, one CSV row per run.")
    for name, field in FIELDS.items():
        meta = field.metadata
        if field.type == "bool" or isinstance(field.default, bool):
            action = "store_false" if field.default is True else "store_true"
            out.add_argument(flag(name), dest=name, action=action, help=meta["help"])
        else:
            out.add_argument(flag(name), dest=name, default=field.default, help=meta["help"], **meta["argparse"])
    return out


def from_argv(argv: list[str] | None = None) -> RunOptions:
    """The command line's options; a bad one is one `error:` line and exit code 2."""
    namespace = parser().parse_args(argv)
    if namespace.run_ids:
        namespace.run_ids = namespace.run_ids.split(",") if isinstance(namespace.run_ids, str) else namespace.run_ids
    try:
        return RunOptions(**vars(namespace))
    except BenchError as err:
        parser().error(str(err))


def from_keywords(suite, **keywords) -> RunOptions:
    """The API's options: the same names as the flags (`train_size=400`, `serving=False`)."""
    unknown = sorted(set(keywords) - set(api_keywords()))
    if unknown:
        raise TypeError(f"run_suite() got an unexpected keyword '{unknown[0]}'; it takes: {', '.join(api_keywords())}")
    return RunOptions(suite=suite, **keywords)


def api_keywords() -> list[str]:
    """The keywords bench.run_suite takes: every option but the command's own (suite, --list, --dry-run)."""
    return [name for name, field in FIELDS.items() if field.metadata["where"] != "command" and name != "run_ids"]


def worker_argv(options: RunOptions, output: str, run_ids: list[str]) -> list[str]:
    """The flags a pool's worker runs with: the same suite, overrides and launch settings, the
    report `output`, and its task's run_ids; not the pool's own layout."""
    argv = ["--suite", str(options.suite), "--output", str(output), "--run-ids", ",".join(run_ids)]
    for name, field in FIELDS.items():
        if field.metadata["where"] in ("command", "pool") or name in ("suite", "output"):
            continue
        value = getattr(options, name)
        if value == field.default:
            continue
        if isinstance(value, bool):
            argv.append(flag(name))
        elif isinstance(value, (list, tuple)):
            argv += [flag(name), *map(str, value)]
        else:
            argv += [flag(name), str(value)]
    return argv


DOCS_OPTIONS = ("<!-- options:start (python -m bench.options docs/running.md) -->", "<!-- options:end -->")
WHERE = {"command": "what the command does", "launch": "this launch (passed to workers)", "pool": "how cells are split (not passed to workers)",
         "dataset": "suite override: dataset", "defaults": "suite override: defaults", "serving": "suite override: serving",
         "tracking": "suite override: tracking"}


def options_markdown() -> str:
    """The options table of docs/running.md, generated from RunOptions."""
    lines = ["| flag | API keyword | kind | what it does |", "|---|---|---|---|"]
    for name, field in FIELDS.items():
        if field.metadata["help"] == argparse.SUPPRESS:
            continue
        keyword = f"`{name}`" if name in api_keywords() else ""
        lines.append(f"| `{flag(name)}` | {keyword} | {WHERE[field.metadata['where']]} | {field.metadata['help']} |")
    return "\n".join(lines)


def suite_overrides(options: RunOptions) -> dict[str, dict]:
    """section -> {key: value}: what the options change in the suite file, before validation."""
    out = {section: {} for section in SUITE_SECTIONS}
    for name, field in FIELDS.items():
        where = field.metadata["where"]
        value = getattr(options, name)
        if where in SUITE_SECTIONS and value != field.default:
            out[where][field.metadata["key"] or name] = list(value) if isinstance(value, tuple) else value
    return out


if __name__ == "__main__":
    fill_block(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/running.md"), DOCS_OPTIONS, options_markdown())
