"""One run's row, built once: what the run was (its cell), where it ran (the launch's
context), how it ended (its outcome) and what it measured (bench/train/measure.py)."""

from __future__ import annotations

import dataclasses
import json

from bench.results.columns import Status


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where a launch's runs ran and on what data: the same for every row of the launch."""

    device: str
    labels: list
    train_examples: int
    test_examples: int
    train_split_examples: int
    validation_split: str
    test_split: str
    versions: str
    git_commit: str
    peak_tflops: float | None = None
    peak_source: str = ""
    serving: object = None  # the suite's ServingSpec when each ok run's serving is measured, else None
    class_names: list = dataclasses.field(default_factory=list)  # by label id: exports' id2label
    checkpoint_revisions: dict = dataclasses.field(default_factory=dict)  # checkpoint spec -> commit or weights hash
    validation_majority_rate: float | None = None  # the validation split's most frequent label's share


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How one run went, besides what it measured: a wrong field fails when the run starts,
    not in append_row after training was paid for."""

    started_at: str
    status: str = ""
    error: str = ""
    ended_at: str = ""
    tokenize_seconds: float | None = None
    total_params: int | None = None
    trainable_params: int | None = None
    trainable_pct: float | None = None
    predictions_file: str = ""
    saved_model: str = ""
    pad_token: str = ""


def build_row(cell, context: RunContext, run: RunOutcome, result=None) -> dict:
    """A run's row, built once: what it was (the cell's configuration), where it ran
    (`context`: device, data sizes, versions), how it ended (`run`: status, error, times,
    parameter counts) and, for a run that finished, what it measured (`result`, a RunResult)."""
    hp = cell.hparams
    row = {
        "suite": cell.suite,
        "run_id": cell.run_id(),
        "config_id": cell.config_id(),
        "tuning_id": cell.tuning_id(),
        "sweep_point": json.dumps(dict(cell.point), sort_keys=True),
        "checkpoint": cell.checkpoint,
        "checkpoint_revision": context.checkpoint_revisions.get(cell.checkpoint, ""),
        "strategy": cell.strategy.name,
        "strategy_kind": cell.strategy.kind,
        "strategy_params": json.dumps(cell.strategy.params, sort_keys=True),
        "seed": cell.seed,
        "epochs": hp.epochs,
        "batch_size": hp.batch_size,
        "global_batch_size": hp.batch_size * cell.num_processes,
        "learning_rate": hp.learning_rate,
        "select": hp.select,
        "gradient_checkpointing": hp.gradient_checkpointing,
        "max_length": hp.max_length,
        "num_processes": cell.num_processes,
        "mixed_precision": cell.mixed_precision,
        "test_examples": context.test_examples,
        "train_split_examples": context.train_split_examples,
        "validation_split": context.validation_split,
        "validation_majority_rate": context.validation_majority_rate,
        "test_split": context.test_split,
        "device": context.device,
        "versions": context.versions,
        "git_commit": context.git_commit,
        "train_examples": cell.dataset.train_size or context.train_examples,
        "label_names": json.dumps(context.labels),
        **{k: v for k, v in dataclasses.asdict(run).items() if v is not None and v != ""},
    }
    if result is not None:
        # 6 significant digits: the noise of a timing or a mean loss is far larger
        row.update({k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in result.columns().items()})
        row["peak_source"] = context.peak_source
    return row


def row_summary(row: dict) -> str:
    if row["status"] == Status.PAUSED:
        return f"paused at epoch {row['epochs_run']} (halving): validation {row['validation_accuracy']:.4f}, its state kept"
    if row["status"] != Status.OK:
        return f"{row['status'].upper()}: {row['error']}"
    return ((f"validation {row['validation_accuracy']:.4f} (epoch {row['selected_epoch']}), " if row.get("validation_accuracy") is not None else "")
            + f"test accuracy {row['test_accuracy']:.4f}, loss ratio {_ratio(row['loss_ratio'])}, "
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

