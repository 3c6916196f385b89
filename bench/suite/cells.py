"""Cells and their identity: one cell is one run, and its ids say which runs are the same.

A cell is one checkpoint x one strategy x one sweep point x one train size x one seed, with
every hyperparameter resolved. Its `run_id` is a hash of everything that defines the run, so
the same configuration always gets the same id (the key for resuming and comparing later).
`config_id` leaves out the seed (the runs of one configuration); `tuning_id` also leaves out
the swept values (the points of one sweep, among which bench/decision/selection.py chooses on
validation). Local paths are hashed relative to the suite file, so ids survive a move.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from bench.suite.schema import HPARAM_FIELDS, DatasetSpec, Hyperparameters


@dataclasses.dataclass(frozen=True)
class StrategySpec:
    name: str
    kind: str
    params: dict  # the kind's own options (patterns, r, hidden, ...)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the suite."""

    suite: str
    checkpoint: str
    strategy: StrategySpec
    seed: int
    hparams: Hyperparameters
    dataset: DatasetSpec  # train_size is this cell's (one of train_sizes for a learning curve)
    mixed_precision: str  # no, fp16, bf16 once resolved for the machine (bench/train/hardware.py); auto before
    num_processes: int = 1  # the global batch grows with processes
    suite_dir: str = ""  # local paths are hashed relative to it: ids survive a move of the checkout
    device_kind: str = "cpu"  # cpu or cuda: a GPU run of a cell is not the CPU run of it
    sweep: tuple = ()  # ((key, (values...)), ...): the space this cell's point was drawn from
    point: tuple = ()  # ((key, value), ...): this cell's swept values
    needs_choice: bool = False  # sweep_seeds: first, a later seed: runs only if its point is chosen

    def config(self) -> dict:
        """Everything that defines the run, as plain data; local paths relative to the suite file."""
        dataset = _drop_unset(self.dataset.model_dump(exclude=NOT_HASHED["dataset"]), HASHED_ONLY_WHEN_SET["dataset"])
        if dataset["data_dir"]:
            dataset["data_dir"] = self._portable(dataset["data_dir"])
        if dataset["files"]:
            dataset["files"] = {split: self._portable(p) for split, p in dataset["files"].items()}
        config = {
            "suite": self.suite,
            "checkpoint": self._portable(self.checkpoint),
            "strategy": dataclasses.asdict(self.strategy),
            "seed": self.seed,
            "hparams": _drop_unset(self.hparams.model_dump(), HASHED_ONLY_WHEN_SET["hparams"]),
            "dataset": dataset,
            "num_processes": self.num_processes,
            "mixed_precision": self.mixed_precision,
        }
        if self.device_kind != "cpu":  # ids written before device kinds were hashed are CPU runs
            config["device_kind"] = self.device_kind
        return config

    def run_id(self) -> str:
        """Hash of everything that changes the run's results, launch settings included."""
        return _hash(self.config())

    def config_id(self) -> str:
        """The same without the seed: runs that differ only by seed share it (the report
        groups seeds by it)."""
        return _hash({k: v for k, v in self.config().items() if k != "seed"})

    def tuning_id(self) -> str:
        """The same with each swept value replaced by a marker: every point of one sweep shares
        it, and it stays the same when the sweep is widened (the report's advice when a choice
        lands at the edge), so the points already run join the new ones. Without a sweep it is
        the config_id."""
        if not self.sweep:
            return self.config_id()
        config = {k: v for k, v in self.config().items() if k != "seed"}
        for key, _values in self.sweep:
            section = config["hparams"] if key in HPARAM_FIELDS else config["strategy"]["params"]
            section[key] = "<swept>"
        return _hash(config)

    def point_label(self) -> str:
        """`learning_rate=0.001, r=16`, or '' without a sweep."""
        return ", ".join(f"{k}={_short_value(v)}" for k, v in self.point)

    def _portable(self, path: str) -> str:
        if self.suite_dir and os.path.isabs(path):
            return os.path.relpath(path, self.suite_dir)
        return path


# Fields added after reports with run_ids existed: hashed only when a suite sets them, so a
# suite that does not use them keeps its run_ids (and resume keeps working).
HASHED_ONLY_WHEN_SET = {
    "dataset": {"text_pair_column": None, "validation_split": None, "validation_size": None, "train_sizes": None,
                "config": None},
    "hparams": {"select": "last", "patience": None, "gradient_checkpointing": False},
}


# Fields that name things without changing what a run computes: never hashed.
NOT_HASHED = {"dataset": {"label_names"}}


def _drop_unset(values: dict, unset: dict) -> dict:
    return {k: v for k, v in values.items() if not (k in unset and v == unset[k])}


def _hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _short_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)

