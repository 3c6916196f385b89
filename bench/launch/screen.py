"""Screening a suite's checkpoints before any of them is fine-tuned (the suite's `screen:`).

For every checkpoint: its frozen backbone's pooled features of the train examples (a fixed
sample, the suite's shuffle), a transferability score of them with a bootstrap interval
(bench/decision/transferability.py) and its size; then the rule of bench/decision/screening.py
keeps the checkpoints that could be the recommendation and drops the rest, each with its reason.
The verdicts go to `<report stem>.screening.csv` beside the report, with the seconds each score
took (what the screen cost); a rerun with the same settings reads them instead of scoring again,
so a resumed or sharded suite fine-tunes the same checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from bench.decision.screening import Candidate, screen
from bench.decision.transferability import spread
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import build_model, parameter_counts
from bench.results.screening import read_screen, screening_path, write_screen
from bench.train.features import COMPUTE_DTYPES


def checkpoints_to_train(suite, data, device: torch.device, mixed_precision: str, report: Path, revisions: dict,
                         say, write: bool = True) -> list[str]:
    """The checkpoints this suite fine-tunes: all of them without a `screen:` section (or with
    one checkpoint); else those the screen keeps, scored now or read from an earlier screen of
    the same settings. `write`: this process writes the screening file (the main one)."""
    if suite.screen is None or len(suite.checkpoints) < 2:
        return list(suite.checkpoints)
    path = screening_path(report)
    count = min(suite.screen.examples or len(data.splits["train"]), len(data.splits["train"]))
    rows = earlier_screen(path, suite, revisions, count)
    if rows is None:
        rows = score_checkpoints(suite, data.splits["train"].select(range(count)), len(data.labels), device,
                                 mixed_precision, revisions, say)
        if write:
            write_screen(path, rows)
        say(f"screening ({suite.screen.score}, {rows[0]['examples']} train examples, {suite.screen.pooling} pooling, "
            f"{sum(r['seconds'] for r in rows):.1f} s): written to {path}")
    else:
        say(f"screening: the verdicts of {path} (same checkpoints and settings)")
    for row in rows:
        say(f"    {'kept   ' if row['kept'] else 'DROPPED'} {row['checkpoint']}: {row['score_name']} "
            f"{row['score']:.4g} [{row['low']:.4g}, {row['high']:.4g}]; {row['reason']}")
    return [row["checkpoint"] for row in rows if row["kept"]]


def score_checkpoints(suite, examples, num_labels: int, device, mixed_precision: str, revisions: dict, say) -> list[dict]:
    """Score every checkpoint on `examples` (the first of the train subset, already the suite's
    fixed shuffle) and apply the screening rule; one row per checkpoint."""
    spec = suite.screen
    labels = np.array(examples["labels"])
    candidates, seconds = [], {}
    for checkpoint in suite.checkpoints:
        start = time.perf_counter()
        features = frozen_features(checkpoint, num_labels, examples, spec, suite.defaults.max_length, device,
                                   mixed_precision)
        value, low, high = spread(spec.score, features, labels, resamples=spec.resamples, seed=suite.dataset.shuffle_seed)
        size = parameter_counts(Checkpoint(checkpoint, num_labels, meta=True).classifier())["total_params"]
        candidates.append(Candidate(checkpoint, value, low, high, float(size)))
        seconds[checkpoint] = time.perf_counter() - start
        say(f"    scored {checkpoint}: {spec.score} {value:.4g} in {seconds[checkpoint]:.1f} s")
    verdicts = {v.candidate.checkpoint: v for v in screen(candidates, spec.keep)}
    return [{
        "checkpoint": c.checkpoint, "checkpoint_revision": revisions.get(c.checkpoint, ""), "score_name": spec.score,
        "score": round(c.score, 6), "low": round(c.low, 6), "high": round(c.high, 6), "parameters": int(c.cost),
        "examples": len(examples), "pooling": spec.pooling, "max_length": suite.defaults.max_length,
        "seconds": round(seconds[c.checkpoint], 3), "kept": verdicts[c.checkpoint].kept,
        "reason": verdicts[c.checkpoint].reason,
    } for c in candidates]


@torch.no_grad()
def frozen_features(spec: str, num_labels: int, examples, screen, max_length: int, device: torch.device,
                    mixed_precision: str) -> np.ndarray:
    """One pooled vector per example from the checkpoint's frozen backbone: the forward pass a
    head strategy with this pooling pays, in the run's compute dtype."""
    checkpoint = Checkpoint(spec, num_labels)
    model = build_model("head", checkpoint, {"hidden": [], "pooling": screen.pooling}).model.to(device).eval()
    tokenizer = checkpoint.tokenizer()
    dtype = COMPUTE_DTYPES.get(mixed_precision)
    pairs = examples["text_pair"] if "text_pair" in examples.column_names else None
    texts, out = examples["text"], []
    for start in range(0, len(texts), screen.batch_size):
        chunk = slice(start, start + screen.batch_size)
        encoded = tokenizer(texts[chunk], pairs[chunk] if pairs else None, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out.append(model.pool(**inputs).float().cpu())
    return torch.cat(out).numpy()


def earlier_screen(path: Path, suite, revisions: dict, count: int) -> list[dict] | None:
    """The rows of an earlier screen of exactly these checkpoints, revisions and settings, or None."""
    rows = read_screen(path)
    if not rows:
        return None
    spec = suite.screen
    same = (sorted(r["checkpoint"] for r in rows) == sorted(suite.checkpoints)
            and all(r["checkpoint_revision"] == revisions.get(r["checkpoint"], "") and r["score_name"] == spec.score
                    and r["pooling"] == spec.pooling and r["max_length"] == suite.defaults.max_length
                    and r["examples"] == count for r in rows))
    return sorted(rows, key=lambda r: suite.checkpoints.index(r["checkpoint"])) if same else None
