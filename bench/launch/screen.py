"""Screening a suite's checkpoints before any of them is fine-tuned (the suite's `screen:`).

For every checkpoint: one pass of its frozen backbone over the train examples (a fixed sample,
the suite's shuffle) and the validation examples, every screen's score of those features
(bench/decision/transferability.py: LogME, H-score, the shrunk H-score of the layer mean, a linear
probe's validation accuracy), the suite's score with its interval, and its size; then the rule of
bench/decision/screening.py
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
from bench.decision.transferability import h_score, logme, probe, shrunk_h_score, spread
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.heads import pool_tokens
from bench.inputs.strategies import build_model, parameter_counts
from bench.results.screening import SCREEN_COLUMNS, read_screen, screening_path, write_screen
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
        sample = {"train": data.splits["train"].select(range(count))}
        if "validation" in data.splits:
            sample["validation"] = data.splits["validation"]
        rows = score_checkpoints(suite, sample, len(data.labels), device, mixed_precision, revisions, say)
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


def score_checkpoints(suite, sample: dict, num_labels: int, device, mixed_precision: str, revisions: dict,
                      say) -> list[dict]:
    """Score every checkpoint by every screen on `sample` (train: the first of the train subset,
    already the suite's fixed shuffle; validation, where the suite has it, for the probe), from one
    frozen forward pass each, and apply the screening rule to the suite's score; one row per checkpoint."""
    spec, examples = suite.screen, sample["train"]
    labels = np.array(examples["labels"])
    candidates, rows = [], []
    for checkpoint in suite.checkpoints:
        start = time.perf_counter()
        features = frozen_features(checkpoint, num_labels, sample, spec, suite.defaults.max_length, device,
                                   mixed_precision)
        scores = screen_scores(features, labels, np.array(sample["validation"]["labels"]) if "validation" in sample else None)
        value, low, high = chosen_score(spec, features, labels, scores, suite.dataset.shuffle_seed)
        size = parameter_counts(Checkpoint(checkpoint, num_labels, meta=True).classifier())["total_params"]
        candidates.append(Candidate(checkpoint, value, low, high, float(size)))
        rows.append({"checkpoint": checkpoint, "seconds": round(time.perf_counter() - start, 3),
                     **{SCREEN_COLUMNS[name]: round(v[0] if isinstance(v, tuple) else v, 6) for name, v in scores.items()}})
        say(f"    scored {checkpoint}: {spec.score} {value:.4g} in {rows[-1]['seconds']:.1f} s")
    verdicts = {v.candidate.checkpoint: v for v in screen(candidates, spec.keep)}
    return [{
        **row, "checkpoint_revision": revisions.get(c.checkpoint, ""), "score_name": spec.score,
        "score": round(c.score, 6), "low": round(c.low, 6), "high": round(c.high, 6), "parameters": int(c.cost),
        "examples": len(examples), "pooling": spec.pooling, "max_length": suite.defaults.max_length,
        "kept": verdicts[c.checkpoint].kept, "reason": verdicts[c.checkpoint].reason,
    } for c, row in zip(candidates, rows)]


def screen_scores(features: dict, labels: np.ndarray, validation_labels: np.ndarray | None) -> dict:
    """Every screen's score of one checkpoint, for the report's comparison of screens: LogME and
    H-score of the pooled last layer, the shrunk H-score of the layer mean, and the probe's
    validation accuracy with its Wilson interval (without a validation split: no probe)."""
    train = features["train"]
    scores = {"logme": logme(train["pooled"], labels), "hscore": h_score(train["pooled"], labels),
              "hscore-layers": shrunk_h_score(train["layers"], labels)}
    if validation_labels is not None:
        scores["probe"] = probe(train["pooled"], labels, features["validation"]["pooled"], validation_labels)
    return scores


def chosen_score(spec, features: dict, labels: np.ndarray, scores: dict, seed: int) -> tuple[float, float, float]:
    """(score, low, high) of the suite's screen: the probe's interval over validation examples, or
    a score's bootstrap interval over the train sample."""
    if spec.score == "probe":
        return scores["probe"]
    which = features["train"]["layers" if spec.score == "hscore-layers" else "pooled"]
    return spread(spec.score, which, labels, resamples=spec.resamples, seed=seed)


@torch.no_grad()
def frozen_features(spec: str, num_labels: int, sample: dict, screen, max_length: int, device: torch.device,
                    mixed_precision: str) -> dict[str, dict[str, np.ndarray]]:
    """split -> features, from the checkpoint loaded once (`split_features` for each split of `sample`)."""
    checkpoint = Checkpoint(spec, num_labels)
    model = build_model("head", checkpoint, {"hidden": [], "pooling": screen.pooling}).model.to(device).eval()
    tokenizer = checkpoint.tokenizer()
    return {name: split_features(model, tokenizer, examples, screen, max_length, device, mixed_precision)
            for name, examples in sample.items()}


@torch.no_grad()
def split_features(model, tokenizer, examples, screen, max_length: int, device: torch.device,
                   mixed_precision: str) -> dict[str, np.ndarray]:
    """From one pass of the frozen backbone over `examples`, in the run's compute dtype: `pooled`,
    one vector per example by the screen's pooling (what a head strategy with this pooling reads),
    and `layers`, the mean over every layer's mean-pooled tokens."""
    dtype = COMPUTE_DTYPES.get(mixed_precision)
    pairs = examples["text_pair"] if "text_pair" in examples.column_names else None
    texts, pooled, layers = examples["text"], [], []
    for start in range(0, len(texts), screen.batch_size):
        chunk = slice(start, start + screen.batch_size)
        encoded = tokenizer(texts[chunk], pairs[chunk] if pairs else None, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            out = model.backbone_output(**inputs, all_layers=True)
            pooled.append(model.pool_output(out, inputs["attention_mask"]).float().cpu())
            every = [pool_tokens(h, inputs["attention_mask"], "mean").float() for h in out.hidden_states[1:]]
            layers.append(torch.stack(every).mean(0).cpu())
    return {"pooled": torch.cat(pooled).numpy(), "layers": torch.cat(layers).numpy()}


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
