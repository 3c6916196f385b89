"""The row contract: every column of the CSV report declared once, with its type, unit, meaning,
the group it belongs to and whether trackers get it; and the `Row` that is built by a run,
written by the store (bench/results/store.py) and read back, typed, by the same code for the
report, `compare`, `merge`, the API and trackers.

The README's column table is generated from `COLUMNS` (`python -m bench.results.columns
README.md`); a test compares them. Reports written before the test split's columns were named
`test_*` (they were `eval_*`) are read through `RENAMED`, their values unchanged.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.generated import fill_block

ROOT = Path(__file__).resolve().parents[2]


class Status(str, enum.Enum):
    """How a run ended. Only ok rows have metrics."""

    OK = "ok"
    DIVERGED = "diverged"
    OOM = "oom"
    FAILED = "failed"
    PAUSED = "paused"  # a halved sweep's point at a rung, its state kept: superseded by its next row
    STOPPED = "stopped"  # a halved sweep's point stopped at a rung: charged to the sweep, never tested

    def __str__(self) -> str:  # written and shown as its value, on every Python version
        return self.value

    @property
    def failed(self) -> bool:
        """The run did not finish: it diverged, ran out of memory or raised (its error says which)."""
        return self in (Status.DIVERGED, Status.OOM, Status.FAILED)

    __format__ = str.__format__


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its name, the type its values are read as (text, int, float, bool, Status,
    or JSON: dict, list), what it means, its unit, its group and whether trackers get it."""

    name: str
    type: type
    description: str
    unit: str = ""
    group: str = ""  # identity, configuration, data, launch, model, accuracy, speed, serving, files, provenance
    tracked: bool = False  # trackers get it at the end of the run, under final/<name>
    # a serving figure that depends only on what is served: timed once per served computation and
    # carried by every run that serves the same one (bench/deploy/serving.py)
    timed: bool = False


COLUMNS: tuple[Column, ...] = (
    Column('suite', str, 'suite name', group='identity'),
    Column('run_id', str, "hash of the run's full configuration, local paths relative to the suite file (same config, same id; a rerun skips ok run_ids)", group='identity'),
    Column('config_id', str, 'the same hash without the seed: the runs of one configuration over several seeds share it', group='identity'),
    Column('tuning_id', str, 'the same hash with swept values replaced by the whole sweep: every point of one sweep shares it (= config_id without a sweep)', group='identity'),
    Column('sweep_point', dict, "JSON of this run's swept values ({} without a sweep); the report chooses one point per tuning_id on validation accuracy", group='identity'),
    Column('status', Status, "ok; diverged (the training loss became NaN/inf: the run stopped, `error` gives the step); oom (out of memory, `error` gives the batch size); failed (any other error); paused (a halved sweep's point at a rung, waiting for the rung's decision; its next row supersedes it); stopped (a halved sweep's point not kept at a rung: its validation figures and seconds up to there, charged to its sweep's tuning cost, no test score). Only ok rows have test metrics", group='identity'),
    Column('checkpoint', str, 'hub id (pinned: id@revision), local directory or package:<pkg>/<folder> as written in the suite', group='configuration'),
    Column('checkpoint_revision', str, "which weights trained: the hub commit the checkpoint resolved to (40 hex), or sha256:<16 hex> over a local folder's weight files", group='configuration'),
    Column('strategy', str, "the strategy's name in the suite", group='configuration'),
    Column('strategy_kind', str, 'full, freeze, head, lora or peft', group='configuration'),
    Column('strategy_params', dict, "the strategy's options as JSON", group='configuration'),
    Column('seed', int, 'random seed (model init of new layers, dropout, data order)', group='configuration'),
    Column('epochs', int, 'training epochs', group='configuration'),
    Column('batch_size', int, 'examples per device per step', group='configuration'),
    Column('global_batch_size', int, 'batch_size x processes', group='configuration'),
    Column('learning_rate', float, 'peak learning rate (AdamW, linear decay to 0)', group='configuration'),
    Column('select', str, "which epoch's weights the run kept: last, or best (highest validation accuracy)", group='configuration'),
    Column('gradient_checkpointing', bool, "whether each layer's activations were recomputed in the backward pass instead of kept (less memory, more time; the same losses)", group='configuration'),
    Column('max_length', int, 'tokens per example after truncation (batches are padded to their longest example, or to a length bucket when compiled)', group='configuration'),
    Column('pad_token', str, "the token batches were padded with and its id; '= the end-of-text token' where the tokenizer had no pad token (a decoder's: the field's convention), and a decoder's config.pad_token_id was set to it", group='configuration'),
    Column('train_examples', int, 'training examples (a fixed-seed subset of the train split, disjoint from validation by row and text)', group='data'),
    Column('validation_split', str, "where the validation examples come from: a split name, or 'carved from <train split>'; empty: no validation (old rows, or a suite without one)", group='data'),
    Column('validation_majority_rate', float, "the share of the validation examples in their most frequent class: what a model that learned nothing scores (halving's rungs do not decide before a sweep beats it)", group='data'),
    Column('validation_examples', int, 'validation examples: every epoch is scored on them and every choice (epoch, sweep point) is made on them', group='data'),
    Column('test_split', str, 'the split scored once per run, after training, whose figures the report compares (the test split)', group='data'),
    Column('test_examples', int, 'test split examples scored, exactly once each, once per run', group='data'),
    Column('train_split_examples', int, 'rows of the whole train split the training examples were drawn from (for projecting cost to the full data)', group='data'),
    Column('num_processes', int, 'processes (GPUs or CPU workers) that trained together', group='launch'),
    Column('mixed_precision', str, "no, fp16 or bf16 (what the suite's `auto` resolved to on this machine)", group='launch'),
    Column('device', str, 'device name (GPU model, or CPU model with its thread count)', group='launch'),
    Column('total_params', int, 'all parameters of the trained model (LoRA: base + adapters + head copy)', group='model'),
    Column('trainable_params', int, 'parameters with requires_grad', group='model', tracked=True),
    Column('trainable_pct', float, 'trainable_params / total_params x 100', unit='%', group='model'),
    Column('train_loss', float, 'mean training loss over the kept epoch (train mode, dropout on)', group='accuracy'),
    Column('validation_loss', float, 'mean cross-entropy over the validation set at the kept epoch', group='accuracy', tracked=True),
    Column('validation_accuracy', float, 'accuracy on the validation set at the kept epoch (what choices are made on)', group='accuracy', tracked=True),
    Column('test_loss', float, 'mean cross-entropy over the test split set, scored once after training on the kept weights', group='accuracy', tracked=True),
    Column('loss_ratio', float, 'train_loss / validation_loss (without validation: / test_loss); well below 1 (the seed notebook used 0.5) signals overfitting; empty when the held-out loss is 0', group='accuracy', tracked=True),
    Column('test_accuracy', float, 'test accuracy: the eval split, scored once after training on the kept weights', group='accuracy', tracked=True),
    Column('epochs_run', int, 'epochs trained (fewer than epochs when patience stopped the run early)', group='accuracy'),
    Column('selected_epoch', int, 'the epoch whose weights were kept and scored on the test split', group='accuracy', tracked=True),
    Column('label_names', list, 'JSON list: the label value each class id stands for (sorted values of the label column; strings are class names)', group='accuracy'),
    Column('degenerate', bool, 'True when the model predicts one class for every evaluation example (it learned nothing usable; never recommend it)', group='accuracy'),
    Column('train_samples_per_s', float, 'global: train_examples x epochs_run / train_seconds', unit='/s', group='speed', tracked=True),
    Column('steady_train_samples_per_s', float, 'global, steady state: training steps after the first min(10, steps/10), cache building excluded', unit='/s', group='speed', tracked=True),
    Column('train_tokens_per_s', float, 'global: non-padding tokens of the training set x epochs_run / train_seconds', unit='/s', group='speed'),
    Column('test_samples_per_s', float, 'global: test_examples / test_seconds (the one test pass)', unit='/s', group='speed'),
    Column('train_seconds', float, 'wall time of the training steps (+ computing cached frozen outputs of the train set, when this run computed them; + saving and loading its state at halving rungs); no evaluation, tokenization or loading; GPU synchronised', unit='s', group='speed', tracked=True),
    Column('validation_seconds', float, "wall time of every epoch's validation pass (+ computing cached frozen outputs of the validation set); part of what a run costs", unit='s', group='speed'),
    Column('test_seconds', float, 'wall time of the one test pass (+ computing cached frozen outputs of the test set); measurement, not charged', unit='s', group='speed'),
    Column('tokenize_seconds', float, 'time spent tokenizing for this run; ~0 when an earlier run of the suite used the same tokenizer and length', unit='s', group='speed'),
    Column('cache_seconds', float, 'time this run spent computing frozen outputs once (head and cnn runs; freeze runs with cache_frozen): 0 when it reused them all; empty for runs without a frozen part', unit='s', group='speed'),
    Column('reused_cache_seconds', float, "time an earlier run of the suite, or the screen, spent computing the train and validation frozen outputs this run reused (charged to that run or to the screening; the report adds it to this run's standalone cost)", unit='s', group='speed'),
    Column('compile', str, 'torch.compile mode: reduce-overhead (CUDA graphs, static shapes), default, or off', group='speed'),
    Column('compile_seconds', float, 'compiling and capturing every batch shape before training (compiled runs); not in train_seconds', unit='s', group='speed'),
    Column('padding_waste', float, 'padded tokens / real tokens over the training steps (1.0 = no padding computed); empty for head runs on cached features', group='speed'),
    Column('train_flops_per_step', float, "FLOPs of one training step (forward + backward, one process's batch at the widest batch width), counted by torch FlopCounterMode on one row of the uncompiled model, times the rows", unit='FLOP', group='speed'),
    Column('achieved_tflops', float, 'steady state: FLOPs per padded token of that step x padded tokens processed per second / 1e12', unit='TFLOP/s', group='speed'),
    Column('peak_tflops', float, 'peak of the devices used (x processes): GPU table by dtype, or CPU matmul measured at start', unit='TFLOP/s', group='speed'),
    Column('peak_source', str, 'where peak_tflops comes from', group='speed'),
    Column('mfu', float, 'model FLOPs utilisation: achieved_tflops / peak_tflops', group='speed', tracked=True),
    Column('peak_memory_mb', float, 'cuda: max allocated, max over processes; cpu: peak RSS during the run, max over processes', unit='MB', group='speed', tracked=True),
    Column('memory_measure', str, 'cuda_max_allocated or cpu_peak_rss', group='speed'),
    Column('serving_form', str, 'what the serving figures measured: merged (a peft adapter merged into its base with merge_and_unload, what a deployment runs) or as trained; empty when serving was not measured (--no-serving, serving.measure: false, or an older row)', group='serving', timed=True),
    Column('serving_latency_p50_ms', float, "batch-1 latency of the model alone (tokenization apart), median over serving_latency_calls requests after a warm-up, on the run's device in its compute dtype and compile setting; GPU synchronised per call", unit='ms', group='serving', tracked=True, timed=True),
    Column('serving_latency_p95_ms', float, '95th percentile of the same calls', unit='ms', group='serving', timed=True),
    Column('serving_latency_p99_ms', float, '99th percentile of the same calls', unit='ms', group='serving', tracked=True, timed=True),
    Column('serving_latency_calls', int, "batch-1 calls timed: at least the suite's serving.min_calls and serving.min_seconds of them", group='serving', timed=True),
    Column('serving_tokenize_ms', float, 'tokenizing one request (truncated at max_length), median; a server pays it per request, beside the model', unit='ms', group='serving', timed=True),
    Column('serving_input_tokens', int, "tokens the model computes over per request, median: the request's plus a prompt method's virtual tokens", group='serving', timed=True),
    Column('serving_samples_per_s', float, 'throughput of the model alone at serving_batch_size (the best of serving.batch_sizes), requests pre-tokenized and padded per batch; one device', unit='/s', group='serving', tracked=True, timed=True),
    Column('serving_batch_size', int, 'the batch size of serving_samples_per_s', group='serving', timed=True),
    Column('serving_throughput', dict, 'JSON: samples/s at every batch size of serving.batch_sizes', group='serving', timed=True),
    Column('serving_memory_mb', float, "the served model's weights + the most memory serving took above them (cuda: allocated bytes; cpu: resident set growth, a lower bound)", unit='MB', group='serving', tracked=True, timed=True),
    Column('serving_stored_mb', float, 'MB (fp32) to keep beside the public checkpoint to serve the run: the whole model when pretrained weights changed (full, freeze, merged adapters), else the trained parameters (adapter + head, a head on a frozen backbone)', unit='MB', group='serving'),
    Column('unmerged_latency_p50_ms', float, 'peft runs served merged: batch-1 p50 of the adapter model as trained (unmerged)', unit='ms', group='serving', timed=True),
    Column('unmerged_samples_per_s', float, 'peft runs served merged: throughput of the unmerged model at its best batch size', unit='/s', group='serving', timed=True),
    Column('unmerged_stored_mb', float, 'peft runs served merged: MB (fp32) of the adapter and head alone', unit='MB', group='serving'),
    Column('merged_agreement', float, 'peft runs served merged: fraction of the serving requests on which merged and unmerged predict the same class (1.0 expected; below it under fp16/bf16 rounding)', group='serving'),
    Column('serving_computation', str, "hash of what serving this run computes and how it is timed: the model's class, every parameter's name and shape, merged or not, compute dtype, device, max_length and the suite's serving settings (not learning rates, seeds or weights)", group='serving'),
    Column('serving_measured_by', str, "run_id of the run whose timing these serving figures are: this run's own, or an earlier run's that served the same computation (timed once per serving_computation); stored size and merged agreement are always this run's", group='serving'),
    Column('serving_seconds', float, 'wall time of this run\'s serving step (timing, or only its own stored size and agreement when it carries an earlier timing); not charged to the run', unit='s', group='serving'),
    Column('serving_error', str, "why serving was not measured for an ok run (the run's training figures stand)", group='serving'),
    Column('history', list, 'per-epoch JSON list: epoch, train_loss, train_seconds, validation_loss, validation_accuracy, validation_correct (which validation examples the epoch got right, packed bits: bench/results/outcomes.py); the test split is never scored per epoch', group='files'),
    Column('predictions_file', str, 'per-example test predictions (idx, label, prediction, loss), relative to this CSV', group='files'),
    Column('saved_model', str, "with --save: the run's exported folder (bench/deploy/export.py: a transformers model, a peft adapter (+ merged/), or a frozen backbone's head), relative to this CSV", group='files'),
    Column('error', str, 'why a run that is not ok stopped', group='provenance'),
    Column('started_at', str, 'UTC start time (ISO 8601)', group='provenance'),
    Column('ended_at', str, 'UTC end time', group='provenance'),
    Column('versions', str, 'torch, transformers, accelerate, peft, datasets, evaluate versions', group='provenance'),
    Column('git_commit', str, "commit of this tool's code (+dirty if it had uncommitted changes)", group='provenance'),
)
BY_NAME = {column.name: column for column in COLUMNS}
NAMES = [column.name for column in COLUMNS]
TRACKED = [column.name for column in COLUMNS if column.tracked]
# Columns renamed since reports were first written: old name -> today's. Old reports are read
# (and rewritten on the next append) under today's names; their values do not change.
RENAMED = {"eval_loss": "test_loss", "eval_accuracy": "test_accuracy", "eval_examples": "test_examples",
           "eval_samples_per_s": "test_samples_per_s", "eval_seconds": "test_seconds", "eval_split": "test_split"}


def known(header: list[str]) -> bool:
    """Whether every column of a report's header is one this version reads (today's or a renamed one)."""
    return all(name in BY_NAME or name in RENAMED for name in header)


class Row(dict):
    """One run's row: column -> typed value (None where a number, flag or JSON cell is empty; text
    stays text). `Row.parse`
    reads a CSV record; `csv_record` writes one; only known columns are accepted."""

    @classmethod
    def parse(cls, record: dict, where: str = "") -> Row:
        """A CSV record (text values, today's or old column names) as a typed Row. A value that
        is not its column's type raises BenchError naming the row and column."""
        if None in record or None in record.values():
            raise BenchError(f"{where}run {record.get('run_id') or '?'}: the row has "
                             f"{'more' if None in record else 'fewer'} fields than the header")
        row = cls()
        for name, text in record.items():
            name = RENAMED.get(name, name)
            row[name] = _parse(BY_NAME[name], text, record, where) if name in BY_NAME else text
        return row

    def csv_record(self) -> dict:
        """The row as CSV text, every column in order ('' where unset)."""
        unknown = set(self) - set(BY_NAME)
        if unknown:
            raise ValueError(f"row has columns not in the schema: {sorted(unknown)}")
        return {name: _text(self.get(name)) for name in NAMES}

    def __repr__(self) -> str:  # a row holds kilobytes of history and error text: say which run it is
        what = f"{self.get('checkpoint')} / {self.get('strategy')} / seed {self.get('seed')}"
        result = (f"test accuracy {self['test_accuracy']:.4f}" if self.get("test_accuracy") is not None
                  else f"{self.get('status')}")
        return f"Row({self.get('run_id')}: {what}: {result})"


def _parse(column: Column, text, record: dict, where: str):
    kind = column.type
    if kind is str:
        return text  # text stays text ('' when empty); every other type is None when empty
    if text is None or text == "":
        return None
    try:
        if kind is bool:
            if text not in ("True", "False"):
                raise ValueError(text)
            return text == "True"
        if kind is int:
            return int(float(text)) if float(text).is_integer() else int(text)
        if kind in (dict, list):
            value = json.loads(text)
            if not isinstance(value, kind):
                raise ValueError(text)
            return value
        return kind(text)
    except (ValueError, TypeError):
        raise BenchError(f"{where}run {record.get('run_id') or '?'}: column '{column.name}' holds {str(text)[:40]!r}, "
                         f"not {getattr(kind, '__name__', kind)}") from None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=isinstance(value, dict))
    return str(value)


# ----------------------------------------------------------------------------- the README's column table

DOCS_COLUMNS = ("<!-- columns:start (python -m bench.results.columns docs/columns.md) -->", "<!-- columns:end -->")


def columns_markdown() -> str:
    """The column table, as the docs show it: generated from COLUMNS, so the two never differ."""
    lines = ["| column | group | type | unit | meaning |", "|---|---|---|---|---|"]
    for c in COLUMNS:
        kind = "JSON" if c.type in (dict, list) else "status" if c.type is Status else c.type.__name__
        tracked = "; trackers get it at the end of the run (final/)" if c.tracked else ""
        lines.append(f"| `{c.name}` | {c.group} | {kind} | {c.unit} | {c.description}{tracked} |")
    lines.append("")
    lines.append("Reports written before the test split's columns were named `test_*` call them "
                 + ", ".join(f"`{old}`" for old in RENAMED) + "; they are read under today's names.")
    return "\n".join(lines)


if __name__ == "__main__":
    fill_block(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "columns.md"), DOCS_COLUMNS, columns_markdown())
