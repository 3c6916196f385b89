"""Read a suite YAML, validate it strictly, and expand it into cells.

A cell is one run: one checkpoint x one strategy x one seed, with every hyperparameter
resolved. Its `run_id` is a hash of everything that defines the run, so the same
configuration always gets the same id (the key for resuming and comparing later).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from bench import BenchError, first_line
from bench.strategies import validate_strategy_params

SUITES_DIR = Path(__file__).resolve().parent.parent / "suites"
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where the examples come from and how many of them a run uses."""

    name: str | None = None  # a hub dataset id, e.g. "imdb"
    files: dict | None = None  # local files per split: {"train": path, "eval": path}
    data_dir: str | None = None  # a folder holding <split>.csv/.json/.jsonl/.parquet
    train_split: str = "train"
    eval_split: str = "test"
    text_column: str = "text"
    text_pair_column: str | None = None  # a second text (sentence pairs, as GLUE's MRPC or RTE)
    label_column: str = "label"
    train_size: int | None = None  # None: the whole split
    eval_size: int | None = None
    shuffle_seed: int = 42  # fixed, so every cell sees the same examples


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Training settings; the suite's `defaults`, overridable per strategy."""

    epochs: int = 2
    batch_size: int = 16  # per device; the global batch is this x processes
    learning_rate: float = 5e-5
    max_length: int = 100
    weight_decay: float = 0.0  # HF Trainer's default, which the seed notebook used
    warmup_ratio: float = 0.0
    # torch.compile: auto = on CUDA (CUDA graphs, static shapes), off on CPU; true / false force it
    compile: bool | str = "auto"


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
    dataset: DatasetSpec
    mixed_precision: str  # no, fp16, bf16 once resolved for the machine (bench/run.py); auto before
    num_processes: int = 1  # the global batch grows with processes
    suite_dir: str = ""  # local paths are hashed relative to it: ids survive a move of the checkout

    def config(self) -> dict:
        """Everything that defines the run, as plain data; local paths relative to the suite file."""
        dataset = dataclasses.asdict(self.dataset)
        for field, default in HASHED_ONLY_WHEN_SET.items():  # options added later leave older ids as they were
            if dataset.get(field) == default:
                dataset.pop(field)
        if dataset["data_dir"]:
            dataset["data_dir"] = self._portable(dataset["data_dir"])
        if dataset["files"]:
            dataset["files"] = {split: self._portable(p) for split, p in dataset["files"].items()}
        return {
            "suite": self.suite,
            "checkpoint": self._portable(self.checkpoint),
            "strategy": dataclasses.asdict(self.strategy),
            "seed": self.seed,
            "hparams": dataclasses.asdict(self.hparams),
            "dataset": dataset,
            "num_processes": self.num_processes,
            "mixed_precision": self.mixed_precision,
        }

    def run_id(self) -> str:
        """Hash of everything that changes the run's results, launch settings included."""
        return _hash(self.config())

    def config_id(self) -> str:
        """The same without the seed: runs that differ only by seed share it (the report
        groups seeds by it)."""
        return _hash({k: v for k, v in self.config().items() if k != "seed"})

    def _portable(self, path: str) -> str:
        if self.suite_dir and os.path.isabs(path):
            return os.path.relpath(path, self.suite_dir)
        return path


# Dataset fields added after reports with run_ids existed: hashed only when a suite sets them,
# so a suite that does not use them keeps its run_ids (and resume keeps working).
HASHED_ONLY_WHEN_SET = {"text_pair_column": None}


def _hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    description: str
    dataset: DatasetSpec
    checkpoints: list[str]
    strategies: list[StrategySpec]
    seeds: list[int]
    defaults: Hyperparameters
    overrides: dict  # strategy name -> {hyperparameter: value}
    mixed_precision: str
    path: Path

    def cells(self, num_processes: int = 1, mixed_precision: str | None = None) -> list[Cell]:
        """Every checkpoint x strategy x seed, checkpoints outermost (one load of data per
        tokenizer), for a launch of `num_processes` with the precision resolved for the machine."""
        precision = mixed_precision or self.mixed_precision
        cells = []
        for checkpoint in self.checkpoints:
            for strategy in self.strategies:
                hparams = dataclasses.replace(self.defaults, **self.overrides.get(strategy.name, {}))
                for seed in self.seeds:
                    cells.append(
                        Cell(self.name, checkpoint, strategy, seed, hparams, self.dataset, precision, num_processes,
                             str(self.path.resolve().parent))
                    )
        return cells


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def find_suite(name_or_path: str) -> Path:
    """A suite name from suites/ or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise BenchError(f"suite file {path} does not exist")
        return path
    path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise BenchError(
            f"unknown suite '{name_or_path}'; available: {', '.join(available_suites())} "
            "(or pass a path to a .yaml file)"
        )
    return path


def load_suite(name_or_path: str, data_dir: str | None = None, overrides: dict | None = None) -> Suite:
    """Parse and validate a suite. `data_dir` (flag or BENCH_DATA_DIR) replaces the dataset's
    source; `overrides` come from the command line (train_size, eval_size, epochs, seeds,
    mixed_precision). Both are applied once, to the raw file, and then validated with it."""
    path = find_suite(name_or_path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise BenchError(f"suite {path}{where}: malformed YAML ({problem})") from None
    where = f"suite {path}"
    raw = _mapping(raw, where)
    _no_unknown_keys(raw, {"name", "description", "dataset", "checkpoints", "strategies", "defaults"}, where)
    for key in ("dataset", "checkpoints", "strategies"):
        if key not in raw:
            raise BenchError(f"{where}: missing '{key}'")
    _apply_overrides(raw, overrides or {}, data_dir or os.environ.get("BENCH_DATA_DIR"))

    dataset = _dataset(raw["dataset"], path, f"{where}: dataset")

    checkpoints = raw["checkpoints"]
    if not isinstance(checkpoints, list) or not checkpoints or not all(isinstance(c, str) for c in checkpoints):
        raise BenchError(f"{where}: 'checkpoints' must be a non-empty list of hub ids or local directories")
    checkpoints = [_resolve_checkpoint_path(c, path) for c in checkpoints]
    repeated = sorted({c for c in checkpoints if checkpoints.count(c) > 1})
    if repeated:
        raise BenchError(f"{where}: checkpoint {repeated[0]} is listed twice; list each checkpoint once (seeds repeat runs)")

    defaults_raw = _mapping(raw.get("defaults") or {}, f"{where}: defaults")
    _no_unknown_keys(defaults_raw, _HPARAM_KEYS | {"seeds", "mixed_precision"}, f"{where}: defaults")
    defaults = dataclasses.replace(Hyperparameters(), **_hparams(defaults_raw, f"{where}: defaults"))
    seeds = defaults_raw.get("seeds", [42])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise BenchError(f"{where}: defaults: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise BenchError(f"{where}: defaults: seed {next(x for x in seeds if seeds.count(x) > 1)} is listed twice; list each seed once")
    mixed_precision = defaults_raw.get("mixed_precision", "auto")
    if mixed_precision not in MIXED_PRECISIONS:
        raise BenchError(f"{where}: mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, got {mixed_precision!r}")

    strategies_raw = raw["strategies"]
    if not isinstance(strategies_raw, list) or not strategies_raw:
        raise BenchError(f"{where}: 'strategies' must be a non-empty list")
    strategies, hparam_overrides = [], {}
    for i, entry in enumerate(strategies_raw):
        entry = _mapping(entry, f"{where}: strategies[{i}]")
        name = entry.get("name") or entry.get("kind")
        swhere = f"{where}: strategy '{name}'"
        if "kind" not in entry:
            raise BenchError(f"{where}: strategies[{i}] has no 'kind'")
        if any(s.name == name for s in strategies):
            raise BenchError(f"{where}: two strategies are named '{name}'; give each a unique 'name'")
        hp = {k: v for k, v in entry.items() if k in _HPARAM_KEYS}
        params = {k: v for k, v in entry.items() if k not in _HPARAM_KEYS | {"name", "kind"}}
        validate_strategy_params(entry["kind"], params, swhere)
        hp = _hparams(hp, swhere)
        strategies.append(StrategySpec(name=str(name), kind=entry["kind"], params=params))
        hparam_overrides[str(name)] = hp

    return Suite(
        name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or "").strip(),
        dataset=dataset,
        checkpoints=checkpoints,
        strategies=strategies,
        seeds=seeds,
        defaults=defaults,
        overrides=hparam_overrides,
        mixed_precision=mixed_precision,
        path=path,
    )


def _apply_overrides(raw: dict, overrides: dict, data_dir: str | None) -> None:
    """Command-line values win over the file: written into the raw suite before it is
    validated, so they are checked like the file's own values. The epochs of the command line
    replace every strategy's own."""
    if raw.get("defaults") is None:
        raw["defaults"] = {}
    dataset, defaults = raw["dataset"], raw["defaults"]
    if isinstance(dataset, dict):
        dataset.update({key: overrides[key] for key in ("train_size", "eval_size") if key in overrides})
        if data_dir:  # relative to where the command runs, not to the suite file
            dataset["data_dir"] = str(Path(data_dir).resolve())
            dataset.pop("files", None)
    if isinstance(defaults, dict):
        defaults.update({key: overrides[key] for key in ("epochs", "seeds", "mixed_precision") if key in overrides})
    if "epochs" in overrides and isinstance(raw["strategies"], list):
        for entry in raw["strategies"]:
            if isinstance(entry, dict):
                entry.pop("epochs", None)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error, not the last value."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_HPARAM_KEYS = {f.name for f in dataclasses.fields(Hyperparameters)}
_DATASET_KEYS = {f.name for f in dataclasses.fields(DatasetSpec)}


def _hparams(raw: dict, where: str) -> dict:
    """Type-check hyperparameters. YAML reads `5e-5` as a string, so numbers are coerced."""
    out = {}
    for key, value in raw.items():
        if key not in _HPARAM_KEYS:
            continue
        if key == "compile":
            if not isinstance(value, bool) and value != "auto":
                raise BenchError(f"{where}: 'compile' must be auto, true or false, got {value!r}")
            out[key] = value
            continue
        kind = int if key in ("epochs", "batch_size", "max_length") else float
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
            if kind is int and number != float(value):
                raise ValueError
        except (TypeError, ValueError):
            raise BenchError(f"{where}: '{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
        if not math.isfinite(number):
            raise BenchError(f"{where}: '{key}' must be a finite number, got {value!r}")
        if number < 0 or (number == 0 and key in ("epochs", "batch_size", "max_length", "learning_rate")):
            raise BenchError(f"{where}: '{key}' must be positive, got {value!r}")
        out[key] = number
    return out


def _dataset(raw, suite_path: Path, where: str) -> DatasetSpec:
    raw = dict(_mapping(raw, where))
    _no_unknown_keys(raw, _DATASET_KEYS, where)
    for key in ("train_size", "eval_size"):
        if raw.get(key) is not None and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] <= 0):
            raise BenchError(f"{where}: '{key}' must be a positive integer, got {raw[key]!r}")
    if raw.get("data_dir"):  # paths written in a suite are relative to the suite file
        raw["data_dir"] = str((suite_path.parent / raw["data_dir"]).resolve())
    if raw.get("files"):
        files = _mapping(raw["files"], f"{where}: files")
        _no_unknown_keys(files, {"train", "eval"}, f"{where}: files")
        raw["files"] = {split: str((suite_path.parent / p).resolve()) for split, p in files.items()}
        if set(raw["files"]) != {"train", "eval"}:
            raise BenchError(f"{where}: files must name both 'train' and 'eval'")
    if not (raw.get("name") or raw.get("files") or raw.get("data_dir")):
        raise BenchError(f"{where}: give a hub 'name', local 'files' or a 'data_dir'")
    return DatasetSpec(**raw)


def _resolve_checkpoint_path(spec: str, suite_path: Path) -> str:
    """Relative local directories (./x, ../x) are relative to the suite file; hub ids stay as they are."""
    if spec.startswith(("./", "../")):
        return str((suite_path.parent / spec).resolve())
    return spec


def _mapping(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise BenchError(f"{where}: expected a mapping of keys to values, got {type(value).__name__}")
    return value


def _no_unknown_keys(raw: dict, known: set, where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BenchError(f"{where}: unknown key '{unknown[0]}'; known keys: {', '.join(sorted(known))}")
