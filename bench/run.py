"""Run a suite: every checkpoint x strategy x seed, one CSV row per run.

    accelerate launch bench/run.py --suite offline        # 1 GPU, N GPUs (--num_processes N) or CPU
    python bench/run.py --suite offline                   # one process, no launcher
    python bench/run.py --suite freezing --dry-run        # cells and trainable parameters, no training

Before anything trains, every cell is checked: the suite, the data (columns, sizes), each
checkpoint's config and tokenizer, and each strategy built on the meta device (a freeze
pattern that matches nothing fails here). Bad input ends with one line and exit code 2;
nothing is written. A run that then does not finish is recorded as what happened (`diverged`,
`oom` or `failed`); a rerun skips the cells that already have an ok row (`--force` reruns).
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import BenchError, OneLineParser, first_line  # noqa: E402
from bench.results_csv import git_commit, library_versions, write_predictions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPORTS_DIR = ROOT / "reports"


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", help="a suite name from suites/ or a path to a suite YAML")
    parser.add_argument("--list", action="store_true", help="list the available suites and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the cells and their parameter counts, train nothing")
    parser.add_argument("--force", action="store_true", help="rerun cells that already have an ok row in the report")
    parser.add_argument("--shard", help="I/N: run only the I-th of N fixed parts of the suite's cells (1 <= I <= N), "
                        "e.g. one per SLURM array task; combine the reports with bench/merge.py")
    parser.add_argument("--output", help="CSV report to append to (default: reports/<suite>.csv)")
    parser.add_argument("--save", action="store_true", help="export each finished run's model to <report>.models/<run_id>/ "
                        "in transformers' or peft's format (bench/export.py; pipeline() loads it, bench/predict.py too)")
    parser.add_argument("--data-dir", help="folder with <split>.csv files replacing the suite's dataset source "
                        "(default: $BENCH_DATA_DIR if set)")
    parser.add_argument("--train-size", type=int, help="override the suite's number of training examples")
    parser.add_argument("--eval-size", type=int, help="override the suite's number of test (eval split) examples")
    parser.add_argument("--validation-size", type=int, help="override the suite's number of validation examples "
                        "(carved from train, or sampled from its validation split)")
    parser.add_argument("--epochs", type=int, help="override every strategy's epochs")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the suite's seeds")
    parser.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"], help="override the suite's mixed precision")
    parser.add_argument("--no-serving", action="store_true", help="skip the serving measurement after each run "
                        "(latency, throughput, memory: bench/serving.py; the suite's serving.measure turns it off for good)")
    parser.add_argument("--log-with", nargs="+", metavar="TRACKER", help="record every run in these experiment trackers "
                        "(tensorboard, mlflow, wandb, ...: accelerate's; replaces the suite's tracking.log_with; bench/tracking.py)")
    parser.add_argument("--log-dir", help="where trackers keep local records (default: <report stem>.tracking/ beside the report)")
    parser.add_argument("--workers", type=int, help="run N cells at once, each in its own process on one GPU (or an equal "
                        "share of the CPU cores); every run is the run the sequential path makes (bench/pool.py)")
    parser.add_argument("--runs-per-gpu", type=int, default=1, help="with --workers: pack K runs onto each GPU (small "
                        "models leave a GPU mostly idle at batch 16)")
    parser.add_argument("--run-ids", help=argparse.SUPPRESS)  # a worker's task: these run_ids only, in suite order
    args = parser.parse_args(argv)
    if not args.list and not args.suite:
        parser.error("--suite is required (or --list)")
    if args.shard is not None:
        index, _, count = args.shard.partition("/")
        if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            parser.error(f"--shard must be I/N with 1 <= I <= N, got {args.shard!r}")
        args.shard = (int(index), int(count))
    for name in ("train_size", "eval_size", "validation_size", "epochs", "workers", "runs_per_gpu"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


class Terminated(BaseException):
    """SIGTERM (what SLURM sends before it kills a job): like Ctrl-C, it is not an error of
    the run in flight, so no row is written for it."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(args)
    except BenchError as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as stop:
        signal_name, code = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("Ctrl-C", 130)
        print(f"stopped by {signal_name}: the run in flight is not recorded; rows already written are kept "
              "(rerun the same command to resume)", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    from bench.suite import available_suites

    if args.list:
        for name in available_suites():
            print(f"{name:14} {load_suite_from(args, name).description}")
        return 0
    suite = load_suite_from(args, args.suite)
    if suite.tracking.log_with:
        from bench.tracking import check_trackers

        check_trackers(suite.tracking.log_with)
    go_offline_if_hub_unreachable(suite)
    quiet_bars_when_logging()
    output = Path(args.output) if args.output else REPORTS_DIR / f"{suite.name}.csv"
    if suite.tracking.log_with and not args.dry_run:
        from bench.tracking import check_folder, tracking_folder

        check_folder(tracking_folder(suite.tracking, output))
    if args.workers and not args.dry_run:
        return run_with_workers(args, suite, output)
    return run_here(args, suite, output)


def quiet_bars_when_logging() -> None:
    """Output to a file (a SLURM log, a worker's log): datasets' and transformers' loading bars
    say nothing a log needs; the training bar updates every 10 s (bench.progress_interval) and each run's
    summary line stays."""
    if not sys.stderr.isatty():
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" per run


def load_suite_from(args, name: str):
    """The suite with the command line's overrides applied."""
    from bench.suite import load_suite

    overrides = {
        key: getattr(args, key)
        for key in ("train_size", "eval_size", "validation_size", "epochs", "seeds", "mixed_precision")
        if getattr(args, key) is not None
    }
    suite = load_suite(name, data_dir=args.data_dir, overrides=overrides)
    from dataclasses import replace

    if args.no_serving:
        suite = replace(suite, serving=suite.serving.model_copy(update={"measure": False}))
    tracking = {"log_with": args.log_with, "dir": args.log_dir}
    tracking = {key: value for key, value in tracking.items() if value is not None}
    if tracking:
        suite = replace(suite, tracking=suite.tracking.model_copy(update=tracking))
    return suite


def run_here(args, suite, output: Path) -> int:
    """Run the suite's pending cells one after the other in this launch (one process, or the N
    processes of `accelerate launch`, which train each run data-parallel)."""
    # Heavy imports after the suite is known to be valid: a typo is reported in a second.
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    from bench.data import load_splits
    from bench.hardware import device_name, resolve_mixed_precision, set_cpu_threads
    from bench.results_csv import check_writable

    if not args.dry_run:
        check_writable(output, create_folder=not args.output)  # the default reports/ folder is made
    # non_blocking: batches (pinned by the loaders on CUDA) reach the GPU without the host
    # waiting for the queued steps to finish.
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(suite.mixed_precision),
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
    )
    check_processes_connected(accelerator)
    every_cell = suite.cells(accelerator.num_processes, accelerator.mixed_precision, accelerator.device.type)
    cells = selected_cells(args, every_cell)
    threads = set_cpu_threads(accelerator)
    say = accelerator.print
    if accelerator.device.type == "cuda":  # fp32 matmuls on tensor cores (TF32): same training, several times faster
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    revisions = check_checkpoints(suite)
    with accelerator.main_process_first():  # the first process fills datasets' cache, the others read it
        data = load_splits(suite.dataset)  # splits, labels, split sizes, class names; columns and sizes checked
    say_plan(suite, cells, data, f"{accelerator.num_processes} process(es) on {accelerator.device}", say)
    counts = preflight(suite, len(data.labels))
    if args.dry_run:
        print_cells(cells, counts, accelerator, say)
        return 0

    from bench.hardware import matmul_dtype, peak_tflops

    peak, peak_source = peak_tflops(accelerator.device, matmul_dtype(accelerator.mixed_precision, accelerator.device))
    context = run_context(suite, data, device_name(accelerator, threads), peak, peak_source, revisions)
    pending = pending_cells(cells, output, args.force, say)
    failures, waiting = run_cells(pending, every_cell, accelerator, data, output, context, args.save, say, suite)
    accelerator.wait_for_everyone()  # a rank ending early can abort its peers (see NOTES)
    accelerator.end_training()
    if waiting:
        say(f"{waiting} later-seed run(s) wait for their sweep's first-seed points, which are not all in {output}: "
            "merge the shards' reports into it and rerun the same command to run them")
    if failures:
        say(f"{failures} of {len(cells)} runs did not finish ok; see the status and error columns of {output}")
    return 1 if failures else 0


def run_with_workers(args, suite, output: Path) -> int:
    """`--workers N`: the same checks as a sequential run, then the pending cells on N worker
    processes (bench/pool.py)."""
    import torch

    from bench.data import load_splits
    from bench.hardware import resolve_mixed_precision
    from bench.pool import run_pool, slot_device, slots_for
    from bench.results_csv import check_writable

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BenchError("--workers starts its own processes, one run each; start it with python, not "
                         "accelerate launch --num_processes N (which trains each run data-parallel)")
    slots = slots_for(args.workers, args.runs_per_gpu)
    check_writable(output, create_folder=not args.output)
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    every_cell = suite.cells(1, resolve_mixed_precision(suite.mixed_precision), kind)
    cells = selected_cells(args, every_cell)
    revisions = check_checkpoints(suite)
    data = load_splits(suite.dataset)
    say_plan(suite, cells, data, f"{len(slots)} workers of 1 process on {kind}", print)
    preflight(suite, len(data.labels))
    context = run_context(suite, data, slot_device(slots[0]), None, "", revisions)
    return run_pool(pending_cells(cells, output, args.force, print), every_cell, args, output, context, slots, print)


def selected_cells(args, cells: list) -> list:
    """The cells this launch runs: every I-th for `--shard I/N` (fixed by the suite's order, the
    same on every machine), or a worker's `--run-ids`."""
    if args.shard:
        index, count = args.shard
        cells = cells[index - 1 :: count]
    if args.run_ids:
        wanted = set(args.run_ids.split(","))
        cells = [c for c in cells if c.run_id() in wanted]
    return cells


def check_checkpoints(suite) -> dict:
    """Config, tokenizer and weight files of every checkpoint: seconds, before the dataset is
    read. Returns which weights each is (checkpoint spec -> hub commit or weights hash)."""
    from bench.checkpoints import Checkpoint

    revisions = {}
    for spec in suite.checkpoints:
        checkpoint = Checkpoint(spec, num_labels=2, meta=True)
        check_room_for_text(checkpoint.tokenizer(), suite, spec)
        checkpoint.check_weights()
        revisions[spec] = checkpoint.revision_id()
    return revisions


def say_plan(suite, cells: list, data, where: str, say) -> None:
    splits, labels = data.splits, data.labels
    say(f"suite {suite.name}: {suite.description}" if suite.description else f"suite {suite.name}")
    validation = f"{len(splits['validation'])} validation / " if "validation" in splits else "no validation / "
    deferred = sum(cell.needs_choice for cell in cells)
    say(f"{len(cells) - deferred} runs" + (f" (+ {deferred} later seeds, run for each sweep's chosen point only)" if deferred else "")
        + f"; {len(splits['train'])} train / {validation}{len(splits['eval'])} test examples, {len(labels)} labels; {where}")


def run_context(suite, data, device: str, peak, peak_source: str, revisions: dict):
    """What every row of this launch shares: where it ran, data sizes, versions, which weights."""
    from bench.results_csv import RunContext

    splits, labels, split_sizes = data.splits, data.labels, data.sizes
    return RunContext(
        device=device,
        labels=labels,
        train_examples=len(splits["train"]),
        eval_examples=len(splits["eval"]),
        train_split_examples=split_sizes["train"],
        validation_split=validation_source(suite.dataset),
        eval_split=suite.dataset.eval_split,
        versions=library_versions(),
        git_commit=git_commit(),
        peak_tflops=peak,
        peak_source=peak_source,
        serving=suite.serving if suite.serving.measure else None,
        class_names=data.names,
        checkpoint_revisions=revisions,
    )


def pending_cells(cells: list, output: Path, force: bool, say) -> list:
    """The cells without an ok row in the report (all of them with --force)."""
    from bench.results_csv import ok_run_ids

    done = set() if force else ok_run_ids(output) & {cell.run_id() for cell in cells}
    if done:
        say(f"{len(done)} of {len(cells)} runs already have an ok row in {output}: skipped (--force reruns them)")
    return [cell for cell in cells if cell.run_id() not in done]


def run_cells(pending: list, every_cell: list, accelerator, data, output: Path, context, save: bool, say, suite) -> tuple[int, int]:
    """Run the pending cells in order, appending each row; returns (runs not ok, later seeds left
    waiting). `every_cell`: the whole suite's, among which a sweep's first-seed points are found
    (a shard or a worker holds only some of them). Each run has its own tracker runs."""
    from bench.checkpoints import Checkpoint
    from bench.results_csv import append_row
    from bench.tracking import CellTracking, tracking_folder

    splits, labels = data.splits, data.labels
    tokenized_cache, shared_features = {}, {}
    failures, waiting = 0, 0
    for cell in pending:
        if cell.needs_choice:
            accelerator.wait_for_everyone()  # every process reads the report after the main one wrote it
            chosen = chosen_point(output, cell, every_cell)
            if chosen is None:
                waiting += 1
                continue
            if chosen != cell.config_id():
                continue
        if shared_features and next(iter(shared_features))[0] != cell.checkpoint:
            shared_features.clear()  # frozen outputs of the previous checkpoint: no later cell needs them
        point = f" | {cell.point_label()}" if cell.point else ""
        say(f"[{every_cell.index(cell) + 1}/{len(every_cell)}] {cell.checkpoint} | {cell.strategy.name} ({cell.strategy.kind}){point} | seed {cell.seed}")
        tracking = CellTracking(accelerator, suite.tracking, tracking_folder(suite.tracking, output), suite.name, cell,
                                context.checkpoint_revisions.get(cell.checkpoint, ""))
        try:
            row = run_cell(cell, accelerator, Checkpoint(cell.checkpoint, len(labels)), splits, tokenized_cache, output,
                           context, save, shared_features, tracking)
            tracking.finish(row)
        finally:
            tracking.close()
        failures += row["status"] != "ok"
        if accelerator.is_main_process:
            append_row(output, row)
            say(f"    -> {row_summary(row)}; row {row['run_id']} appended to {output}")
    return failures, waiting


def row_summary(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['status'].upper()}: {row['error']}"
    return ((f"validation {row['validation_accuracy']:.4f} (epoch {row['selected_epoch']}), " if row.get("validation_accuracy") is not None else "")
            + f"test accuracy {row['eval_accuracy']:.4f}, loss ratio {_ratio(row['loss_ratio'])}, "
            f"{row['train_samples_per_s']:.1f} train samples/s" + (" (DEGENERATE: one class predicted)" if row["degenerate"] else "")
            + _serving_summary(row))


def _serving_summary(row: dict) -> str:
    if row.get("serving_error"):
        return f"; serving not measured: {row['serving_error']}"
    if not row.get("serving_samples_per_s"):
        return ""
    return (f"; served {row['serving_form']}: p50 {float(row['serving_latency_p50_ms']):.1f} ms at batch 1, "
            f"{float(row['serving_samples_per_s']):,.0f}/s at batch {row['serving_batch_size']}")


def _ratio(value) -> str:
    return f"{value:.3f}" if value is not None else "n/a (held-out loss 0)"


def validation_source(dataset) -> str:
    if dataset.validation_split:
        return dataset.validation_split
    if dataset.files and "validation" in dataset.files:
        return "validation file"
    return f"carved from {dataset.train_split}" if dataset.validation_size else ""


def chosen_point(output: Path, cell, cells) -> str | None:
    """For a later seed of a sweep (`sweep_seeds: first`): the config_id of the point the
    selection protocol chooses from the report's first-seed rows of this sweep ('' when none
    finished), or None while some of this suite's first-seed runs are missing from the report
    (a shard's report holds only its own cells). First-seed rows of points since dropped from
    the sweep still compete, as they do in the decision report."""
    from bench.results_csv import Status, one_row_per_run, read_results
    from bench.selection import choose

    first_seed = [c for c in cells if c.tuning_id() == cell.tuning_id() and not c.needs_choice]
    rows = one_row_per_run(read_results(output)) if output.exists() else {}
    if any(c.run_id() not in rows for c in first_seed):
        return None
    seed = first_seed[0].seed
    ok = [r for r in rows.values()
          if r["tuning_id"] == cell.tuning_id() and int(r["seed"]) == seed and r["status"] == Status.OK]
    return choose(ok)[0].chosen.config_id if ok else ""


def check_room_for_text(tokenizer, suite, spec: str) -> None:
    """A max_length that the special tokens alone fill leaves no room for the text."""
    pairs = bool(suite.dataset.text_pair_column)
    special = tokenizer.num_special_tokens_to_add(pair=pairs)
    shortest = min(cell.hparams.max_length for cell in suite.cells())
    if shortest <= special:
        raise BenchError(f"max_length {shortest} leaves no room for text: {spec}'s tokenizer adds {special} special tokens "
                         f"to each {'pair' if pairs else 'example'}; set max_length > {special}")


def preflight(suite, num_labels: int) -> dict:
    """Build every checkpoint x strategy on the meta device: catches bad patterns, missing
    checkpoints and wrong options before any training, and counts parameters exactly."""
    from bench.checkpoints import Checkpoint
    from bench.strategies import build_model, parameter_counts

    counts = {}
    longest = max(cell.hparams.max_length for cell in suite.cells())
    for spec in suite.checkpoints:
        checkpoint = Checkpoint(spec, num_labels, meta=True)
        limit = position_limit(checkpoint.config)
        if limit is not None and longest > limit:
            raise BenchError(f"max_length {longest} is beyond what {spec} can take ({limit} positions); set max_length <= {limit}")
        for strategy in suite.strategies:
            try:
                plan = build_model(strategy.kind, checkpoint, strategy.params)
            except BenchError:
                raise
            except Exception as err:  # e.g. peft rejecting an option value
                raise BenchError(
                    f"strategy '{strategy.name}' cannot be applied to {spec}: {type(err).__name__}: {first_line(err)}"
                ) from None
            counts[spec, strategy.name] = parameter_counts(plan.model)
    return counts


def position_limit(config) -> int | None:
    """Tokens a model can take: its position embeddings, less the offset RoBERTa-style models
    reserve (their positions start after the padding index)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    if config.model_type in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= (config.pad_token_id or 0) + 1
    return limit


def run_cell(cell, accelerator, checkpoint, splits, tokenized_cache, output: Path, context, save: bool = False,
             shared_features: dict | None = None, tracking=None) -> dict:
    """Train one cell; returns its CSV row. A run that raises becomes a diverged, oom or failed row.
    `context`: the launch's RunContext. `save`: export the trained model (bench/export.py)."""
    from dataclasses import replace

    from accelerate.utils import set_seed

    from bench.results_csv import RunOutcome, build_row
    from bench.strategies import build_model, changes_pretrained, parameter_counts
    from bench.train import train_one

    run, result = RunOutcome(started_at=now()), None
    try:
        tokenized, tokenizer, seconds = tokenized_for(cell, checkpoint, splits, tokenized_cache, accelerator)
        run = replace(run, tokenize_seconds=seconds)
        set_seed(cell.seed)  # before the model: new heads and adapters are initialised from it
        plan = build_model(cell.strategy.kind, checkpoint, cell.strategy.params)
        run = replace(run, **parameter_counts(plan.model))
        pretrained_changed = changes_pretrained(plan.model)
        result = train_one(cell, accelerator, plan, tokenized, tokenizer, context.peak_tflops, shared_features, tracking)
        if context.serving is not None:
            result.serving = serving_figures(cell, accelerator, plan.model, tokenizer, splits, context.serving,
                                             result.compile_mode, pretrained_changed)
        run = replace(run, status="ok", **(write_run_files(cell, result, plan.model, tokenizer, output, context, run.started_at, save)
                                           if accelerator.is_main_process else {}))
    except BenchError:
        raise
    except Exception as err:  # a run that did not finish is recorded as what happened, never given numbers
        result = None
        status, error = failure_status(err, cell.hparams.batch_size)
        run = replace(run, status=status, error=error)
        if status == "failed":
            traceback.print_exc()
        release_memory(accelerator)
    return build_row(cell, context, replace(run, ended_at=now()), result)


def serving_figures(cell, accelerator, model, tokenizer, splits, settings, compile_mode, pretrained_changed: bool) -> dict:
    """The run's serving columns, measured by the main process (one device serves; the others
    wait). Requests are the first validation texts (test texts without a validation split).
    A measurement that fails leaves the run ok, with `serving_error` saying why."""
    from bench import first_line
    from bench.serving import measure_serving

    columns = {}
    if accelerator.is_main_process:
        forms = "merged and as trained" if hasattr(model, "merge_and_unload") else "as trained"
        accelerator.print(f"    serving ({forms}): batch-1 latency and throughput at batch {', '.join(map(str, settings.batch_sizes))}, "
                          f"at least {settings.min_seconds:g} s each")
        source = splits["validation"] if "validation" in splits else splits["eval"]
        rows = source.select(range(min(settings.texts, len(source))))
        requests = list(zip(rows["text"], rows["text_pair"])) if "text_pair" in rows.column_names else list(rows["text"])
        try:
            columns = measure_serving(model, tokenizer, requests, cell.hparams.max_length, accelerator.device, settings,
                                      accelerator.autocast(), compile_mode, pretrained_changed)
        except Exception as err:  # noqa: BLE001 -- the run trained; a serving failure must not lose it
            release_memory(accelerator)
            columns = {"serving_error": first_line(err)}
    accelerator.wait_for_everyone()
    return columns


def write_run_files(cell, result, model, tokenizer, output: Path, context, started_at: str, save: bool) -> dict:
    """A finished run's files beside the report: its test predictions, and with --save the
    trained model in the ecosystem's formats (bench/export.py). Returns their paths for the row."""
    files = {"predictions_file": write_predictions(output, cell.run_id(), started_at, result.predictions, context.labels)}
    if save:
        from bench.export import save_run

        folder = output.parent / f"{output.stem}.models" / cell.run_id()
        save_run(folder, cell, model, tokenizer, context.class_names, context.checkpoint_revisions.get(cell.checkpoint, ""))
        files["saved_model"] = str(folder.relative_to(output.parent))
    return files


def tokenized_for(cell, checkpoint, splits, tokenized_cache: dict, accelerator):
    """(tokenized splits, tokenizer, seconds spent): tokenized once per tokenizer and length,
    reused by every strategy and seed of the suite."""
    from bench.data import tokenize

    key = (cell.checkpoint, cell.hparams.max_length)
    start = time.perf_counter()
    if key not in tokenized_cache:
        tokenizer = checkpoint.tokenizer()
        with accelerator.main_process_first():
            tokenized_cache[key] = (tokenize(splits, tokenizer, cell.hparams.max_length), tokenizer)
    tokenized, tokenizer = tokenized_cache[key]
    size = cell.dataset.train_size
    if size is not None and size < len(tokenized["train"]):  # a learning curve's smaller sizes: the first rows
        tokenized = {**tokenized, "train": tokenized["train"].select(range(size))}
    return tokenized, tokenizer, round(time.perf_counter() - start, 3)


def failure_status(err: Exception, batch_size: int) -> tuple[str, str]:
    """(status, error) for a run that raised `err`: diverged, oom or failed."""
    import torch

    from bench.train import Diverged

    if isinstance(err, Diverged):
        return "diverged", str(err)
    if isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower():
        return "oom", f"out of memory at batch size {batch_size} per device: {first_line(err)}"
    return "failed", f"{type(err).__name__}: {first_line(err)}"


def release_memory(accelerator) -> None:
    """After a run that raised: drop what it held so the next cell starts with free memory."""
    import gc

    import torch

    accelerator.free_memory()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def print_cells(cells, counts: dict, accelerator, say) -> None:
    header = f"{'run_id':12}  {'checkpoint':40}  {'strategy':22}  {'kind':6}  {'seed':>4}  {'ep':>2}  {'lr':>8}  {'trainable':>12}  {'total':>12}  {'%':>7}"
    say(header)
    say("-" * len(header))
    for cell in cells:
        c = counts[cell.checkpoint, cell.strategy.name]
        say(
            f"{cell.run_id():12}  {_short(cell.checkpoint, 40):40}  {_short(cell.strategy.name, 22):22}  {cell.strategy.kind:6}  "
            f"{cell.seed:>4}  {cell.hparams.epochs:>2}  {cell.hparams.learning_rate:>8.1e}  {c['trainable_params']:>12,}  "
            f"{c['total_params']:>12,}  {c['trainable_pct']:>7.3f}"
            + (f"  {cell.point_label()}" if cell.point else "") + ("  (if its point is chosen)" if cell.needs_choice else "")
        )


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def go_offline_if_hub_unreachable(suite) -> None:
    """If the suite needs the Hugging Face Hub and it cannot be reached, switch to offline
    mode: cached files still load, and anything uncached fails at once with our one-line
    error instead of minutes of retries. Must run before huggingface_hub is imported."""
    import socket

    uses_hub = not (suite.dataset.files or suite.dataset.data_dir) or any(
        not (c.startswith("package:") or os.path.isdir(c)) for c in suite.checkpoints
    )
    offline = os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE")
    if not uses_hub or offline or "huggingface_hub" in sys.modules:  # it reads the setting on import
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=5).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
        print(f"note: the Hugging Face Hub ({host}) is unreachable; using only locally cached files", file=sys.stderr)


def check_processes_connected(accelerator) -> None:
    """On a machine with no GPU, `accelerate launch --multi_gpu --num_processes 2` starts
    processes that each think they are alone and each train on all the data."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        raise BenchError(
            f"{launched} processes were launched but they are not connected (no GPU found); on CPU run "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ..."
        )


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    sys.exit(main())
