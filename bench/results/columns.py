"""The CSV report: its columns (documented here, quoted in the README), safe appends, and
what sits beside the rows (per-example prediction files, provenance).

One row per run. Rows are only ever appended, one line at a time under an exclusive lock
(a `.<name>.lock` file beside the report), flushed and fsynced before the lock is released:
two processes appending at once lose nothing and interleave nothing. A line cut short by a
kill is never read as a row: readers skip it and the next append cuts it off first. A report
from an older version gains the new columns (rewritten once, through a temporary file and an
atomic rename, empty in its old rows); one with columns this version does not know is refused.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]

COLUMNS = {
    "suite": "suite name",
    "run_id": "hash of the run's full configuration, local paths relative to the suite file (same config, same id; a rerun skips ok run_ids)",
    "config_id": "the same hash without the seed: the runs of one configuration over several seeds share it",
    "tuning_id": "the same hash with swept values replaced by the whole sweep: every point of one sweep shares it (= config_id without a sweep)",
    "sweep_point": "JSON of this run's swept values ({} without a sweep); the report chooses one point per tuning_id on validation accuracy",
    "status": "ok; diverged (the training loss became NaN/inf: the run stopped, `error` gives the step); oom (out of memory, `error` gives the batch size); failed (any other error). Only ok rows have metrics",
    "checkpoint": "hub id (pinned: id@revision), local directory or package:<pkg>/<folder> as written in the suite",
    "checkpoint_revision": "which weights trained: the hub commit the checkpoint resolved to (40 hex), or sha256:<16 hex> over a local folder's weight files",
    "strategy": "the strategy's name in the suite",
    "strategy_kind": "full, freeze, head, lora or peft",
    "strategy_params": "the strategy's options as JSON",
    "seed": "random seed (model init of new layers, dropout, data order)",
    "epochs": "training epochs",
    "batch_size": "examples per device per step",
    "global_batch_size": "batch_size x processes",
    "learning_rate": "peak learning rate (AdamW, linear decay to 0)",
    "select": "which epoch's weights the run kept: last, or best (highest validation accuracy)",
    "max_length": "tokens per example after truncation (batches are padded to their longest example, or to a length bucket when compiled)",
    "train_examples": "training examples (a fixed-seed subset of the train split, disjoint from validation by row and text)",
    "validation_split": "where the validation examples come from: a split name, or 'carved from <train split>'; empty: no validation (old rows, or a suite without one)",
    "validation_examples": "validation examples: every epoch is scored on them and every choice (epoch, sweep point) is made on them",
    "eval_split": "the split scored once per run, after training, whose figures the report compares (the test split)",
    "eval_examples": "test (eval split) examples scored, exactly once each, once per run",
    "train_split_examples": "rows of the whole train split the training examples were drawn from (for projecting cost to the full data)",
    "num_processes": "processes (GPUs or CPU workers) that trained together",
    "mixed_precision": "no, fp16 or bf16 (what the suite's `auto` resolved to on this machine)",
    "device": "device name (GPU model, or CPU model with its thread count)",
    "total_params": "all parameters of the trained model (LoRA: base + adapters + head copy)",
    "trainable_params": "parameters with requires_grad",
    "trainable_pct": "trainable_params / total_params x 100",
    "train_loss": "mean training loss over the kept epoch (train mode, dropout on)",
    "validation_loss": "mean cross-entropy over the validation set at the kept epoch",
    "validation_accuracy": "accuracy on the validation set at the kept epoch (what choices are made on)",
    "eval_loss": "mean cross-entropy over the test (eval split) set, scored once after training on the kept weights",
    "loss_ratio": "train_loss / validation_loss (without validation: / eval_loss); well below 1 (the seed notebook used 0.5) signals overfitting; empty when the held-out loss is 0",
    "eval_accuracy": "test accuracy: the eval split, scored once after training on the kept weights",
    "epochs_run": "epochs trained (fewer than epochs when patience stopped the run early)",
    "selected_epoch": "the epoch whose weights were kept and scored on the test split",
    "label_names": "JSON list: the label value each class id stands for (sorted values of the label column; strings are class names)",
    "degenerate": "True when the model predicts one class for every evaluation example (it learned nothing usable; never recommend it)",
    "train_samples_per_s": "global: train_examples x epochs_run / train_seconds",
    "steady_train_samples_per_s": "global, steady state: training steps after the first min(10, steps/10), cache building excluded",
    "train_tokens_per_s": "global: non-padding tokens of the training set x epochs_run / train_seconds",
    "eval_samples_per_s": "global: eval_examples / eval_seconds (the one test pass)",
    "train_seconds": "wall time of the training steps (+ computing cached frozen outputs of the train set, when this run computed them); no evaluation, tokenization or loading; GPU synchronised",
    "validation_seconds": "wall time of every epoch's validation pass (+ computing cached frozen outputs of the validation set); part of what a run costs",
    "eval_seconds": "wall time of the one test pass (+ computing cached frozen outputs of the test set); measurement, not charged",
    "tokenize_seconds": "time spent tokenizing for this run; ~0 when an earlier run of the suite used the same tokenizer and length",
    "cache_seconds": "time this run spent computing frozen outputs once (head and cnn runs; freeze runs with cache_frozen): 0 when it reused them all; empty for runs without a frozen part",
    "reused_cache_seconds": "time an earlier run of the suite spent computing the train and validation frozen outputs this run reused (charged to that run; the report adds it to this run's standalone cost)",
    "compile": "torch.compile mode: reduce-overhead (CUDA graphs, static shapes), default, or off",
    "compile_seconds": "compiling and capturing every batch shape before training (compiled runs); not in train_seconds",
    "padding_waste": "padded tokens / real tokens over the training steps (1.0 = no padding computed); empty for head runs on cached features",
    "train_flops_per_step": "FLOPs of one training step (forward + backward, one process's batch at the widest batch width), counted by torch FlopCounterMode on the uncompiled model",
    "achieved_tflops": "steady state: FLOPs per padded token of that step x padded tokens processed per second / 1e12",
    "peak_tflops": "peak of the devices used (x processes): GPU table by dtype, or CPU matmul measured at start",
    "peak_source": "where peak_tflops comes from",
    "mfu": "model FLOPs utilisation: achieved_tflops / peak_tflops",
    "peak_memory_mb": "cuda: max allocated, max over processes; cpu: peak RSS during the run, max over processes",
    "memory_measure": "cuda_max_allocated or cpu_peak_rss",
    "serving_form": "what the serving figures measured: merged (a peft adapter merged into its base with merge_and_unload, what a deployment runs) or as trained; empty when serving was not measured (--no-serving, serving.measure: false, or an older row)",
    "serving_latency_p50_ms": "batch-1 latency of the model alone (tokenization apart), median over serving_latency_calls requests after a warm-up, on the run's device in its compute dtype and compile setting; GPU synchronised per call",
    "serving_latency_p95_ms": "95th percentile of the same calls",
    "serving_latency_p99_ms": "99th percentile of the same calls",
    "serving_latency_calls": "batch-1 calls timed: at least the suite's serving.min_calls and serving.min_seconds of them",
    "serving_tokenize_ms": "tokenizing one request (truncated at max_length), median; a server pays it per request, beside the model",
    "serving_input_tokens": "tokens the model computes over per request, median: the request's plus a prompt method's virtual tokens",
    "serving_samples_per_s": "throughput of the model alone at serving_batch_size (the best of serving.batch_sizes), requests pre-tokenized and padded per batch; one device",
    "serving_batch_size": "the batch size of serving_samples_per_s",
    "serving_throughput": "JSON: samples/s at every batch size of serving.batch_sizes",
    "serving_memory_mb": "the served model's weights + the most memory serving took above them (cuda: allocated bytes; cpu: resident set growth, a lower bound)",
    "serving_stored_mb": "MB (fp32) to keep beside the public checkpoint to serve the run: the whole model when pretrained weights changed (full, freeze, merged adapters), else the trained parameters (adapter + head, a head on a frozen backbone)",
    "unmerged_latency_p50_ms": "peft runs served merged: batch-1 p50 of the adapter model as trained (unmerged)",
    "unmerged_samples_per_s": "peft runs served merged: throughput of the unmerged model at its best batch size",
    "unmerged_stored_mb": "peft runs served merged: MB (fp32) of the adapter and head alone",
    "merged_agreement": "peft runs served merged: fraction of the serving requests on which merged and unmerged predict the same class (1.0 expected; below it under fp16/bf16 rounding)",
    "serving_seconds": "wall time of the serving measurement; not charged to the run",
    "serving_error": "why serving was not measured for an ok run (the run's training figures stand)",
    "history": "per-epoch JSON list: epoch, train_loss, train_seconds, validation_loss, validation_accuracy (the test split is never scored per epoch)",
    "predictions_file": "per-example test predictions (idx, label, prediction, loss), relative to this CSV",
    "saved_model": "with --save: the run's exported folder (bench/export.py: a transformers model, a peft adapter (+ merged/), or a frozen backbone's head), relative to this CSV",
    "error": "why a run that is not ok stopped",
    "started_at": "UTC start time (ISO 8601)",
    "ended_at": "UTC end time",
    "versions": "torch, transformers, accelerate, peft, datasets, evaluate versions",
    "git_commit": "commit of this tool's code (+dirty if it had uncommitted changes)",
}


class Status(str, enum.Enum):
    """How a run ended. Only ok rows have metrics."""

    OK = "ok"
    DIVERGED = "diverged"
    OOM = "oom"
    FAILED = "failed"

    def __str__(self) -> str:  # written and shown as its value, on every Python version
        return self.value

    __format__ = str.__format__


# Column -> type, for the typed reader (the others are text). A value that does not parse as
# its type is a malformed row.
_INTS = ("seed", "epochs", "batch_size", "global_batch_size", "max_length", "train_examples", "validation_examples",
         "eval_examples", "train_split_examples", "num_processes", "total_params", "trainable_params", "epochs_run",
         "selected_epoch", "serving_latency_calls", "serving_input_tokens", "serving_batch_size")
_FLOATS = ("learning_rate", "trainable_pct", "train_loss", "validation_loss", "validation_accuracy", "eval_loss",
           "loss_ratio", "eval_accuracy", "train_samples_per_s", "steady_train_samples_per_s", "train_tokens_per_s",
           "eval_samples_per_s", "train_seconds", "validation_seconds", "eval_seconds", "tokenize_seconds",
           "cache_seconds", "reused_cache_seconds", "compile_seconds", "padding_waste", "train_flops_per_step",
           "achieved_tflops", "peak_tflops", "mfu", "peak_memory_mb", "serving_latency_p50_ms", "serving_latency_p95_ms",
           "serving_latency_p99_ms", "serving_tokenize_ms", "serving_samples_per_s", "serving_memory_mb", "serving_stored_mb",
           "unmerged_latency_p50_ms", "unmerged_samples_per_s", "unmerged_stored_mb", "merged_agreement", "serving_seconds")
TYPES = {**{c: int for c in _INTS}, **{c: float for c in _FLOATS}, "degenerate": bool, "status": Status,
         "sweep_point": dict, "serving_throughput": dict, "history": list, "label_names": list, "strategy_params": dict}
assert set(TYPES) <= set(COLUMNS)


def typed_row(row: dict, where: str = "") -> dict:
    """A CSV row with each value as its column's type (empty -> None). A value that is not its
    type raises BenchError naming the row and column."""
    if None in row or None in row.values():
        raise BenchError(f"{where}run {row.get('run_id') or '?'}: the row has "
                         f"{'more' if None in row else 'fewer'} fields than the header")
    out = {}
    for column, text in row.items():
        kind = TYPES.get(column)
        if kind is None or text is None or text == "":
            out[column] = text if kind is None else None
            continue
        try:
            if kind is bool:
                if text not in ("True", "False"):
                    raise ValueError(text)
                out[column] = text == "True"
            elif kind is int:
                out[column] = int(float(text)) if float(text).is_integer() else int(text)
            elif kind in (dict, list):
                value = json.loads(text)
                if not isinstance(value, kind):
                    raise ValueError(text)
                out[column] = value
            else:
                out[column] = kind(text)
        except (ValueError, TypeError):
            raise BenchError(f"{where}run {row.get('run_id') or '?'}: column '{column}' holds {text[:40]!r}, "
                             f"not {getattr(kind, '__name__', kind)}") from None
    return out


# ----------------------------------------------------------------------------- beside the rows


# ----------------------------------------------------------------------------- the README's column table

README_COLUMNS = ("<!-- columns:start (python -m bench.results_csv README.md) -->", "<!-- columns:end -->")


def columns_markdown() -> str:
    """The column table, as the README shows it: generated from COLUMNS, so the two never differ."""
    lines = ["| column | meaning |", "|---|---|"] + [f"| `{name}` | {meaning} |" for name, meaning in COLUMNS.items()]
    return "\n".join(lines)


def write_readme_columns(readme: Path) -> None:
    """Replace the README's generated column table with today's COLUMNS."""
    text = readme.read_text()
    start, end = README_COLUMNS
    if start not in text or end not in text:
        raise BenchError(f"{readme} has no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    readme.write_text(f"{head}{start}\n{columns_markdown()}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
    import sys

    write_readme_columns(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "README.md"))
