"""Rows -> configurations: one `Config` per sweep (its chosen point over its seeds) with what the
report says of it: test accuracy with its interval, loss ratio, speed, cost per run and the
sweep's tuning cost, correctness per example, and its place against the best (filled in by
bench/decision/decide.py)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from bench.decision.cost import Price, price_for
from bench.decision.selection import (
    Tuned,
    charged_device_seconds,
    standalone_device_seconds,
)
from bench.decision.serving_cost import ServingCost, serving_of
from bench.decision.stats import PairedTest, Summary, summarize
from bench.decision.text import accuracy, short_checkpoint, thousands, usd


@dataclasses.dataclass
class Config:
    """One configuration over its seeds, with what the report says of it."""
    config_id: str
    label: str
    rows: list  # its ok rows, one per seed
    accuracy: Summary
    loss_ratio: Summary
    speed: Summary  # train samples/s, end to end
    cost_usd: Summary  # per run
    price: Price
    majority_rate: float | None  # the most frequent label's share of the evaluation set
    correct: np.ndarray | None  # seeds x evaluation examples (ordered by idx), None without predictions
    tuned: Tuned | None = None  # the sweep it was chosen from (or itself alone)
    validation: Summary | None = None  # validation accuracy over its seeds (None: rows without a validation split)
    tuning_cost_usd: float = 0.0  # every run of its sweep: every point and seed
    degenerate: bool = False
    vs_best: PairedTest | None = None
    p_holm: float | None = None
    seed_test: tuple | None = None  # (p, shared seeds) of the paired t-test over seeds, Holm-corrected
    indistinguishable: bool = False  # from the best (or is the best)
    serving: ServingCost | None = None  # what it costs to serve (bench/decision/serving_cost.py); None: not measured

    def __repr__(self) -> str:  # its rows hold per-example arrays and histories: name it, with its figures
        return (f"Config({self.label}: test accuracy {accuracy(self.accuracy.mean)} over {len(self.rows)} seed(s), "
                f"{usd(self.cost_usd.mean)} per run, {thousands(self.trainable_params)} trainable parameters)")

    @property
    def first(self) -> dict:
        return self.rows[0]

    @property
    def seeds(self) -> list[int]:
        return [int(r["seed"]) for r in self.rows]

    @property
    def trainable_params(self) -> int | None:
        return self.first.get("trainable_params")

    @property
    def peak_memory_mb(self) -> float | None:
        values = [r.get("peak_memory_mb") for r in self.rows]
        return max((v for v in values if v is not None), default=None)

    @property
    def device_hours(self) -> float:
        return float(np.mean([standalone_device_seconds(r) for r in self.rows])) / 3600

    @property
    def tuning_runs(self) -> int:
        return len(self.tuned.tuning_rows) if self.tuned else len(self.rows)

    @property
    def full_data_cost(self) -> float | None:
        """The cost per run projected to the whole train split (time grows with examples at the same epochs)."""
        sample, whole = self.first.get("train_examples"), self.first.get("train_split_examples")
        if not sample or not whole or whole <= sample:
            return None
        return self.cost_usd.mean * whole / sample


# ----------------------------------------------------------------------------- rows -> configurations


def row_cost(row: dict, prices: dict, seconds=standalone_device_seconds) -> float:
    """USD of one run at its own device's price (a configuration's seeds may have run on
    different devices)."""
    return seconds(row) / 3600 * price_for(row.get("device") or "", prices).usd_per_hour


def build_configs(tuned: list[Tuned], prices: dict) -> list[Config]:
    """One configuration per sweep: its chosen point, with the sweep's tuning cost."""
    groups = {t.chosen.config_id: t.chosen.rows for t in tuned}
    labels = config_labels(groups)
    configs = []
    for t in tuned:
        rows = t.chosen.rows
        price = price_for(rows[0].get("device") or "", prices)
        correct, majority = _correctness(rows)
        validation = [r.get("validation_accuracy") for r in rows]
        config = Config(
            config_id=t.chosen.config_id,
            label=labels[t.chosen.config_id],
            rows=rows,
            accuracy=summarize(float(r["test_accuracy"]) for r in rows),
            loss_ratio=_summary_or_nan([r.get("loss_ratio") for r in rows]),
            speed=summarize(float(r["train_samples_per_s"]) for r in rows),
            cost_usd=summarize(row_cost(r, prices) for r in rows),
            price=price,
            majority_rate=majority,
            correct=correct,
            tuned=t,
            validation=summarize(float(v) for v in validation) if None not in validation else None,
            tuning_cost_usd=sum(row_cost(r, prices, charged_device_seconds) for r in t.tuning_rows),
            serving=serving_of(rows, price),
        )
        config.degenerate = any(r.get("degenerate") is True for r in rows) or (
            majority is not None and config.accuracy.mean <= majority + 1e-9
        )
        configs.append(config)
    return sorted(configs, key=lambda c: -c.accuracy.mean)


def _summary_or_nan(values: list) -> Summary:
    """A summary of the values that exist; NaN when none does (a held-out loss of 0)."""
    present = [float(v) for v in values if v is not None]
    return summarize(present) if present else Summary((), float("nan"), None, None, None)


def config_labels(groups: dict) -> dict:
    """`strategy`, or `checkpoint / strategy` when the suite has several checkpoints; a
    configuration that differs only in other settings gets its config_id added."""
    checkpoints = {rows[0]["checkpoint"] for rows in groups.values()}
    names = {}
    for config_id, rows in groups.items():
        name = rows[0]["strategy"]
        names[config_id] = f"{short_checkpoint(rows[0]['checkpoint'])} / {name}" if len(checkpoints) > 1 else name
    counts = {n: list(names.values()).count(n) for n in names.values()}
    return {cid: (f"{n} [{cid[:6]}]" if counts[n] > 1 else n) for cid, n in names.items()}


def _correctness(rows: list[dict]) -> tuple[np.ndarray | None, float | None]:
    """Seeds x examples (True = right), ordered by idx, from the per-example prediction files;
    and the majority label's share. (None, None) when a file is missing or the runs were not
    scored on the same examples."""
    per_seed, labels = [], None
    for row in rows:
        name = row.get("predictions_file")
        path = Path(row["_folder"]) / name if name else None
        if path is None or not path.is_file():
            return None, None
        with path.open(newline="") as f:
            records = sorted(csv.DictReader(f), key=lambda r: int(r["idx"]))
        run_labels = [r["label"] for r in records]
        if labels is not None and run_labels != labels:
            return None, None
        labels = run_labels
        per_seed.append([r["label"] == r["prediction"] for r in records])
    counts = {label: labels.count(label) for label in set(labels)}
    return np.array(per_seed, dtype=bool), max(counts.values()) / len(labels)
