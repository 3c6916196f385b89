"""One cell, start to finish: tokens, the model its strategy builds, training
(bench/train/loop.py), the serving measurement, the run's files, and its row. A run that
raises is recorded as what happened (diverged, oom or failed), never given numbers."""

from __future__ import annotations

import dataclasses
import datetime
import errno
import gc
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch
from accelerate.utils import set_seed

from bench.cli import log
from bench.deploy.export import save_run
from bench.deploy.serving import TIMED, Requests, measure_serving, served_computation
from bench.errors import BenchError, first_line
from bench.inputs.checkpoints import pad_description
from bench.inputs.data import tokenize
from bench.inputs.strategies import build_model, changes_pretrained, parameter_counts
from bench.results.columns import Status
from bench.results.provenance import write_predictions
from bench.results.row import RunOutcome, build_row
from bench.results.store import read_results, storage_error
from bench.train.loop import Diverged, RunAids, train_one
from bench.train.segments import Paused


@dataclasses.dataclass
class Reuse:
    """What the runs of one launch compute once and share: tokenized splits (per tokenizer and
    length), frozen features (bench/train/features.py) and serving timings (per served
    computation: serving_computation -> (run_id, timed figures))."""

    tokenized: dict = dataclasses.field(default_factory=dict)
    features: dict = dataclasses.field(default_factory=dict)
    served: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Runs:
    """What every run of a launch shares: its processes, the data's splits, the report the rows
    go to, the row context (RunContext), what earlier runs computed, and whether each trained
    model is exported (--save, bench/deploy/export.py)."""

    accelerator: object
    splits: dict
    output: Path
    context: object
    reuse: Reuse
    save: bool = False


def run_cell(cell, checkpoint, runs: Runs, tracking=None, segment=None) -> dict:
    """Train one cell; returns its CSV row. A run that raises becomes a diverged, oom or failed row.
    `tracking`: the cell's tracker runs. `segment`: a halved run's part (bench/train/loop.py); a
    segment that ends at a rung is a `paused` row.
    A full disk is not the run's failure: it stops the suite with one line (nothing is recorded
    for this run, and a rerun after freeing space runs it)."""
    run, result = RunOutcome(started_at=now()), None
    accelerator, context, reuse, output = runs.accelerator, runs.context, runs.reuse, runs.output
    try:
        tokenized, tokenizer, seconds = tokenized_for(cell, checkpoint, runs.splits, reuse.tokenized, accelerator)
        run = replace(run, tokenize_seconds=seconds, pad_token=pad_description(tokenizer))
        set_seed(cell.seed)  # before the model: new heads and adapters are initialised from it
        plan = build_model(cell.strategy.kind, checkpoint, cell.strategy.params)
        if cell.hparams.gradient_checkpointing:
            checkpoint_activations(plan.model)
        run = replace(run, **parameter_counts(plan.model))
        pretrained_changed = changes_pretrained(plan.model)
        result = train_one(cell, accelerator, plan, tokenized, tokenizer,
                           RunAids(context.peak_tflops, reuse.features, tracking, segment))
        if isinstance(result, Paused):
            return build_row(cell, context, replace(run, status=Status.PAUSED, ended_at=now()), result)
        if context.serving is not None:
            served = Served(plan.model, tokenizer, result.compile_mode, pretrained_changed)
            result.serving = serving_figures(cell, accelerator, served, runs.splits, context.serving, reuse.served, output)
        files = write_run_files(cell, result, plan.model, tokenizer, runs, run.started_at) if accelerator.is_main_process else {}
        run = replace(run, status=Status.OK, **files)
    except BenchError:
        raise
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise storage_error(err, output) from None
        return failed_row(cell, context, run, err, accelerator)
    except Exception as err:  # noqa: BLE001 - a run that did not finish is recorded as what happened, never given numbers
        return failed_row(cell, context, run, err, accelerator)
    return build_row(cell, context, replace(run, ended_at=now()), result)


def checkpoint_activations(model) -> None:
    """Gradient checkpointing: each layer's activations are recomputed in the backward pass
    instead of kept from the forward one (memory for time). Non-reentrant, so dropout draws the
    same masks again and the run computes what it computes without it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's transformers model
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def failed_row(cell, context, run: RunOutcome, err: Exception, accelerator) -> dict:
    """The row of a run that raised: what happened (diverged, oom or failed), never numbers."""
    status, error = failure_status(err, cell.hparams.batch_size)
    if status == Status.FAILED:
        traceback.print_exc()
    release_memory(accelerator)
    return build_row(cell, context, replace(run, status=status, error=error, ended_at=now()))


@dataclasses.dataclass(frozen=True)
class Served:
    """The trained model as a server gets it, with what serving it depends on."""

    model: torch.nn.Module
    tokenizer: object
    compile_mode: str | None
    pretrained_changed: bool  # then the whole model must be stored to serve it


def serving_figures(cell, accelerator, served: Served, splits, settings, timings: dict, output: Path) -> dict:
    """The run's serving columns, by the main process (one device serves; the others wait).
    The timing is taken once per served computation (deploy/serving.py `served_computation`):
    a run that serves what an earlier run of this launch or of the report already timed carries
    that timing, named in `serving_measured_by`. Requests are the first validation texts (test
    texts without a validation split). A measurement that fails leaves the run ok, with
    `serving_error` saying why."""
    columns = {}
    if accelerator.is_main_process:
        dtype = accelerator.mixed_precision
        key = served_computation(served.model, cell.hparams.max_length, accelerator.device, settings, dtype, served.compile_mode)
        measured_by, carried = timings.get(key) or timing_in_report(output, key) or (cell.run_id(), None)
        forms = "merged and as trained" if hasattr(served.model, "merge_and_unload") else "as trained"
        log.info(f"    serving ({forms}): " + (
            f"batch-1 latency and throughput at batch {', '.join(map(str, settings.batch_sizes))}, at least {settings.min_seconds:g} s each"
            if carried is None else f"the same computation as run {measured_by}, timed once: its figures carried"))
        source = splits["validation"] if "validation" in splits else splits["eval"]
        rows = source.select(range(min(settings.texts, len(source))))
        requests = list(zip(rows["text"], rows["text_pair"])) if "text_pair" in rows.column_names else list(rows["text"])
        try:
            received = Requests(requests, served.tokenizer, cell.hparams.max_length, accelerator.device)
            columns = measure_serving(served.model, received, settings, accelerator.autocast(), served.compile_mode,
                                      served.pretrained_changed, carried)
            columns.update(serving_computation=key, serving_measured_by=measured_by)
            timings.setdefault(key, (measured_by, {name: columns.get(name) for name in TIMED}))
        except Exception as err:  # noqa: BLE001 -- the run trained; a serving failure must not lose it
            release_memory(accelerator)
            columns = {"serving_error": first_line(err)}
    accelerator.wait_for_everyone()
    return columns


def timing_in_report(output: Path, key: str) -> tuple[str, dict] | None:
    """(run_id, timed figures) of a row of the report that timed this served computation
    (another worker's, or an earlier launch's), or None."""
    if not output.exists():
        return None
    for row in read_results(output):
        if row.get("serving_computation") == key and row.get("serving_measured_by") == row["run_id"] and row.get("serving_samples_per_s"):
            return row["run_id"], {name: row.get(name) for name in TIMED}
    return None


def write_run_files(cell, result, model, tokenizer, runs: Runs, started_at: str) -> dict:
    """A finished run's files beside the report: its test predictions, and with --save the
    trained model in the ecosystem's formats (bench/deploy/export.py). Returns their paths for the row."""
    output, context = runs.output, runs.context
    files = {"predictions_file": write_predictions(output, cell.run_id(), started_at, result.predictions, context.labels)}
    if runs.save:
        folder = output.parent / f"{output.stem}.models" / cell.run_id()
        save_run(folder, cell, model, tokenizer, context.class_names, context.checkpoint_revisions.get(cell.checkpoint, ""))
        files["saved_model"] = str(folder.relative_to(output.parent))
    return files


def tokenized_for(cell, checkpoint, splits, tokenized_cache: dict, accelerator):
    """(tokenized splits, tokenizer, seconds spent): tokenized once per tokenizer and length,
    reused by every strategy and seed of the suite."""

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


def failure_status(err: Exception, batch_size: int) -> tuple[Status, str]:
    """(status, error) for a run that raised `err`: diverged, oom or failed."""
    if isinstance(err, Diverged):
        return Status.DIVERGED, str(err)
    if isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower():
        return Status.OOM, f"out of memory at batch size {batch_size} per device: {first_line(err)}"
    return Status.FAILED, f"{type(err).__name__}: {first_line(err)}"


def release_memory(accelerator) -> None:
    """After a run that raised: drop what it held so the next cell starts with free memory."""
    accelerator.free_memory()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

