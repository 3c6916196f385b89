"""The CSV report: its columns (documented here, quoted in the README) and safe appends.

One row per run. Rows are only ever appended: the file is rewritten through a temporary
file and an atomic rename, so an interrupted write never leaves a half row, and a file
whose header differs from the current schema is refused rather than mixed.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from bench import BenchError

COLUMNS = {
    "suite": "suite name",
    "run_id": "hash of the run's full configuration (same config, same id)",
    "status": "ok, or failed (then the metric columns are empty and `error` says why)",
    "checkpoint": "hub id, local directory or package:<pkg>/<folder> as written in the suite",
    "strategy": "the strategy's name in the suite",
    "strategy_kind": "full, freeze, head or lora",
    "strategy_params": "the strategy's options as JSON",
    "seed": "random seed (model init of new layers, dropout, data order)",
    "epochs": "training epochs",
    "batch_size": "examples per device per step",
    "global_batch_size": "batch_size x processes",
    "learning_rate": "peak learning rate (AdamW, linear decay to 0)",
    "max_length": "tokens per example after truncation (batches are padded to their longest example)",
    "train_examples": "training examples (a fixed-seed subset of the train split)",
    "eval_examples": "evaluation examples scored, exactly once each",
    "num_processes": "processes (GPUs or CPU workers) that trained together",
    "mixed_precision": "no, fp16 or bf16",
    "device": "device name (GPU model, or CPU with its thread count)",
    "total_params": "all parameters of the trained model (LoRA: base + adapters + head copy)",
    "trainable_params": "parameters with requires_grad",
    "trainable_pct": "trainable_params / total_params x 100",
    "train_loss": "mean training loss over the last epoch (train mode, dropout on)",
    "eval_loss": "mean cross-entropy over the evaluation set after the last epoch",
    "loss_ratio": "train_loss / eval_loss; well below 1 (the seed notebook used 0.5) signals overfitting",
    "eval_accuracy": "accuracy on the evaluation set after the last epoch",
    "train_samples_per_s": "global: train_examples x epochs / train_seconds",
    "eval_samples_per_s": "global: eval_examples x epochs / eval_seconds",
    "train_seconds": "wall time of the training steps only (no eval, tokenization or loading); GPU synchronised",
    "eval_seconds": "wall time of all evaluation passes",
    "peak_memory_mb": "cuda: max allocated, max over processes; cpu: peak RSS during the run, max over processes",
    "memory_measure": "cuda_max_allocated or cpu_peak_rss",
    "history": "per-epoch JSON list: epoch, train_loss, eval_loss, eval_accuracy, train_seconds",
    "predictions_file": "per-example predictions (idx, label, prediction, loss), relative to this CSV",
    "error": "why a failed run failed",
    "started_at": "UTC start time (ISO 8601)",
    "ended_at": "UTC end time",
    "versions": "torch, transformers, accelerate, peft, datasets, evaluate versions",
    "git_commit": "commit of this tool's code (+dirty if it had uncommitted changes)",
}


def append_row(path: Path, row: dict) -> None:
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has columns not in the schema: {sorted(unknown)}")
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text() if path.exists() else ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    if not existing:
        writer.writeheader()
    writer.writerow({column: row.get(column, "") for column in COLUMNS})
    if existing and not existing.endswith("\n"):
        existing += "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(existing + buffer.getvalue())
    os.replace(tmp, path)


def check_writable(path: Path) -> None:
    """Fail before any training if the report cannot take our rows."""
    if path.exists():
        with path.open() as f:
            header = next(csv.reader(f), None)
        if header is not None and header != list(COLUMNS):
            raise BenchError(
                f"{path} was written with other columns than this version writes; "
                "pass --output with a new file (the existing one is left untouched)"
            )
    elif path.parent.exists() and not os.access(path.parent, os.W_OK):
        raise BenchError(f"cannot write the report: {path.parent} is not writable")
