"""Screening a suite's checkpoints before any of them is fine-tuned (the suite's `screen:`).

For every checkpoint: one pass of its frozen backbone over the train examples (a fixed sample,
the suite's shuffle) and the validation examples, every screen's score of those features
(bench/decision/transferability.py: LogME, H-score, the shrunk H-score of the layer mean, a linear
probe's validation accuracy), the suite's score with its interval, and its size; then the rule of
bench/decision/screening.py
keeps the checkpoints that could be the recommendation and drops the rest, each with its reason.
The pass is the one a head run's feature cache makes (bench/train/features.py: the same examples,
chunks and compute dtype), so in a sequential launch the head runs of a kept checkpoint train on
the screen's pooled vectors instead of computing them again, and are charged nothing for them
(their rows say what they reused). The verdicts go to `<report stem>.screening.csv` beside the
report, with the seconds each checkpoint's pass and scores took (what the screen cost); a rerun with the same settings reads them instead of scoring again,
so a resumed or sharded suite fine-tunes the same checkpoints.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from bench.cli import log
from bench.decision.screening import Candidate, screen
from bench.decision.transferability import h_score, logme, probe, shrunk_h_score, spread
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.data import tokenize
from bench.inputs.heads import pool_tokens
from bench.inputs.strategies import build_model, parameter_counts
from bench.results.screening import SCREEN_COLUMNS, read_screen, screening_path, write_screen
from bench.train.batches import ExampleTensors
from bench.train.cell import Reuse
from bench.train.features import COMPUTE_DTYPES, feature_key, frozen_batches


@dataclasses.dataclass
class ScreenLaunch:
    """Where and how a launch screens: its device and compute dtype, whether this process
    writes the screening file (the main one), and where the screen's pooled features go
    so that the launch's head runs train on them instead of computing them again (`reuse`, with
    `cells`, every cell of the suite; None where the runs happen in other processes)."""
    device: torch.device
    mixed_precision: str
    write: bool = True
    reuse: Reuse | None = None
    cells: list = dataclasses.field(default_factory=list)


def checkpoints_to_train(suite, data, report: Path, revisions: dict, launch: ScreenLaunch) -> list[str]:
    """The checkpoints this suite fine-tunes: all of them without a `screen:` section (or with
    one checkpoint); else those the screen keeps, scored now or read from an earlier screen of
    the same settings."""
    if suite.screen is None or len(suite.checkpoints) < 2:
        return list(suite.checkpoints)
    path = screening_path(report)
    count = min(suite.screen.examples or len(data.splits["train"]), len(data.splits["train"]))
    rows = earlier_screen(path, suite, revisions, count)
    if rows is None:
        rows = score_checkpoints(suite, data, count, revisions, launch)
        if launch.write:
            write_screen(path, rows)
        log.info(f"screening ({suite.screen.score}, {rows[0]['examples']} train examples, {suite.screen.pooling} pooling, "
                 f"{sum(r['seconds'] for r in rows):.1f} s): written to {path}")
    else:
        log.info(f"screening: the verdicts of {path} (same checkpoints and settings)")
    for row in rows:
        log.info(f"    {'kept   ' if row['kept'] else 'DROPPED'} {row['checkpoint']}: {row['score_name']} "
                 f"{row['score']:.4g} [{row['low']:.4g}, {row['high']:.4g}]; {row['reason']}")
    kept = [row["checkpoint"] for row in rows if row["kept"]]
    if launch.reuse is not None:  # a dropped checkpoint's tokens and features would only hold memory
        launch.reuse.features = {k: v for k, v in launch.reuse.features.items() if k[0] in kept}
        launch.reuse.tokenized = {k: v for k, v in launch.reuse.tokenized.items() if k[0] in kept}
    return kept


def score_checkpoints(suite, data, count: int, revisions: dict, launch: ScreenLaunch) -> list[dict]:
    """Score every checkpoint by every screen on the first `count` train examples (already the
    suite's fixed shuffle) and, where the suite has them, the validation examples (for the
    probe), from one frozen forward pass each, and apply the screening rule to the suite's
    score; one row per checkpoint."""
    spec = suite.screen
    labels = {"train": np.array(data.splits["train"]["labels"][:count])}
    if "validation" in data.splits:
        labels["validation"] = np.array(data.splits["validation"]["labels"])
    candidates, rows = [], []
    for checkpoint in suite.checkpoints:
        start = time.perf_counter()
        features = frozen_features(checkpoint, suite, data, count, launch)
        scores = screen_scores(features, labels["train"], labels.get("validation"))
        value, low, high = chosen_score(spec, features, labels["train"], scores, suite.dataset.shuffle_seed)
        size = parameter_counts(Checkpoint(checkpoint, len(data.labels), meta=True).classifier())["total_params"]
        candidates.append(Candidate(checkpoint, value, low, high, float(size)))
        rows.append({"checkpoint": checkpoint, "seconds": round(time.perf_counter() - start, 3),
                     **{SCREEN_COLUMNS[name]: round(v[0] if isinstance(v, tuple) else v, 6) for name, v in scores.items()}})
        log.info(f"    scored {checkpoint}: {spec.score} {value:.4g} in {rows[-1]['seconds']:.1f} s")
    verdicts = {v.candidate.checkpoint: v for v in screen(candidates, spec.keep)}
    return [{
        **row, "checkpoint_revision": revisions.get(c.checkpoint, ""), "score_name": spec.score,
        "score": round(c.score, 6), "low": round(c.low, 6), "high": round(c.high, 6), "parameters": int(c.cost),
        "examples": count, "pooling": spec.pooling, "max_length": suite.defaults.max_length,
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
def frozen_features(spec: str, suite, data, count: int, launch: ScreenLaunch) -> dict[str, dict[str, np.ndarray]]:
    """split -> features, from the checkpoint loaded once and one pass over its first `count`
    train examples and its validation examples (`split_features`). The splits are tokenized as
    the runs tokenize them, once: in a sequential launch the runs take the tokens from
    `launch.reuse`, and a head run of this checkpoint on the same examples its frozen features,
    with the seconds they took."""
    checkpoint = Checkpoint(spec, len(data.labels))
    plan = build_model("head", checkpoint, {"hidden": [], "pooling": suite.screen.pooling})
    model = plan.model.to(launch.device).eval()
    max_length = suite.defaults.max_length
    shared = launch.reuse.tokenized if launch.reuse is not None else {}
    if (spec, max_length) not in shared:  # the key and value bench/train/cell.py `tokenized_for` keeps
        tokenizer = checkpoint.tokenizer()
        shared[(spec, max_length)] = (tokenize(data.splits, tokenizer, max_length), tokenizer)
    tokenized, tokenizer = shared[(spec, max_length)]
    sample = {"train": tokenized["train"].select(range(count))}
    if "validation" in tokenized:
        sample["validation"] = tokenized["validation"]
    head_cell = next((c for c in launch.cells if c.checkpoint == spec and c.strategy.kind == "head"
                      and c.hparams.max_length == max_length), None)
    features = {}
    for name, split in sample.items():
        examples = ExampleTensors.from_tokenized(split, tokenizer.pad_token_id, max_length, launch.device)
        start = time.perf_counter()
        pooled, features[name] = split_features(model, examples, launch)  # on the host: the GPU's work is done
        if launch.reuse is not None and head_cell is not None:  # what build_cache would compute for these runs, bit for bit
            key = feature_key(head_cell, plan, name, len(examples))
            cached = ExampleTensors({"features": pooled, "labels": examples.tensors["labels"]}, examples.lengths)
            launch.reuse.features[key] = (cached, time.perf_counter() - start)
    return features


def split_features(model, examples: ExampleTensors, launch: ScreenLaunch) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """One pass of the frozen backbone over `examples`, in the chunks and compute dtype the head
    runs' cache uses (bench/train/features.py): the pooled vectors as the cache holds them (the
    head runs' features), and for the scores `pooled`, one vector per example by the screen's
    pooling, and `layers`, the mean over every layer's mean-pooled tokens."""
    compute = COMPUTE_DTYPES.get(launch.mixed_precision)
    dtype = compute or torch.float32
    pooled, layers = None, None
    for idx, batch in frozen_batches(examples, launch.device):
        with torch.autocast(launch.device.type, dtype=compute, enabled=compute is not None):
            out = model.backbone_output(**batch, all_layers=True)
            values = model.pool_output(out, batch["attention_mask"]).to(dtype)
            every = [pool_tokens(h, batch["attention_mask"], "mean").float() for h in out.hidden_states[1:]]
        if pooled is None:
            pooled = torch.zeros((len(examples), values.shape[1]), dtype=dtype, device=launch.device)
            layers = torch.zeros((len(examples), every[0].shape[1]), device=launch.device)
        pooled[idx] = values
        layers[idx] = torch.stack(every).mean(0)
    return pooled, {"pooled": pooled.float().cpu().numpy(), "layers": layers.cpu().numpy()}


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
