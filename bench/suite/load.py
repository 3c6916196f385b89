"""Read a suite YAML, apply the launch's overrides, validate it against the schema
(bench/suite/schema.py), and expand it into cells (bench/suite/cells.py: one run each, with
its ids). The YAML reader is strict: a key given twice is an error, and `5e-5` is a number.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path

import yaml

from bench.errors import BenchError, first_line
from bench.inputs.strategies import STRATEGIES, validate_strategy_params
from bench.suite.cells import Cell, StrategySpec
from bench.suite.schema import (
    HPARAM_FIELDS,
    DatasetSpec,
    Defaults,
    HalvingSpec,
    Hyperparameters,
    ScreenSpec,
    ServingSpec,
    SuiteFile,
    TrackingSpec,
    validated,
)

SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"


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
    sweeps: dict  # strategy name -> {key: [values]} (the defaults' sweep merged in)
    sweep_seeds: str  # all, or first: sweep points on the first seed, the chosen point on every seed
    mixed_precision: str
    path: Path
    serving: ServingSpec = dataclasses.field(default_factory=ServingSpec)
    tracking: TrackingSpec = dataclasses.field(default_factory=TrackingSpec)
    screen: ScreenSpec | None = None  # None: every checkpoint is fine-tuned
    halving: HalvingSpec | None = None  # None: every sweep point trains to the last epoch

    def cells(self, num_processes: int = 1, mixed_precision: str | None = None, device_kind: str = "cpu") -> list[Cell]:
        """Every checkpoint x train size x strategy x sweep point x seed, checkpoints outermost
        (one tokenization per tokenizer), for a launch of `num_processes` with the precision
        resolved for the machine. With `sweep_seeds: first`, the later seeds of every point
        come last, marked `needs_choice` (bench/launch runs those of the chosen point only)."""
        precision = mixed_precision or self.mixed_precision
        first, later = [], []
        for checkpoint, size, strategy in itertools.product(self.checkpoints, self.train_sizes(), self.strategies):
            dataset = self.dataset.model_copy(update={"train_size": size, "train_sizes": None})
            for strategy_point, hparams, point in self.points(strategy):
                space = tuple((k, tuple(v)) for k, v in self.sweeps.get(strategy.name, {}).items())
                for n, seed in enumerate(self.seeds):
                    deferred = bool(space) and self.sweep_seeds == "first" and n > 0
                    cell = Cell(self.name, checkpoint, strategy_point, seed, hparams, dataset, precision, num_processes,
                                str(absolute(self.path).parent), device_kind, space, point, deferred)
                    (later if deferred else first).append(cell)
        return first + later

    def rungs(self, cell: Cell) -> tuple[int, ...]:
        """The epochs at which this cell's run pauses for its sweep's rung decision
        (bench/launch/halving.py): none without `halving:`, for a point alone in its sweep, and for
        a later seed of `sweep_seeds: first` (it runs the chosen point whole)."""
        if self.halving is None or cell.needs_choice or math.prod(len(values) for _, values in cell.sweep) < 2:
            return ()
        return self.halving.rungs_for(cell.hparams.epochs)

    def train_sizes(self) -> list[int | None]:
        return sorted(self.dataset.train_sizes) if self.dataset.train_sizes else [self.dataset.train_size]

    def points(self, strategy: StrategySpec) -> list[tuple[StrategySpec, Hyperparameters, tuple]]:
        """(strategy, hyperparameters, swept values) for every point of the strategy's sweep
        (one point without a sweep). Each point was validated when the suite was loaded."""
        base = {**self.defaults.model_dump(), **self.overrides.get(strategy.name, {})}
        sweep = self.sweeps.get(strategy.name, {})
        out = []
        for values in itertools.product(*sweep.values()):
            point = tuple(zip(sweep, values))
            hp = {**base, **{k: v for k, v in point if k in HPARAM_FIELDS}}
            params = {**strategy.params, **{k: v for k, v in point if k not in HPARAM_FIELDS}}
            out.append((dataclasses.replace(strategy, params=params), Hyperparameters(**hp), point))
        return out


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


def load_suite(source, overrides: dict | None = None) -> Suite:
    """Parse and validate a suite: a name from suites/, a path to a YAML file, or the file's
    content as a dict (the Python API; its relative paths are taken from the working directory).
    `overrides`: section -> {key: value}, the launch's options that change the suite
    (bench/options.py `suite_overrides`), written into the raw file and validated with it.
    BENCH_DATA_DIR stands for `--data-dir` when that is not given."""
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
        name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name").strip() else "suite"
        path, where = Path.cwd() / f"{name}.yaml", f"suite {name} (a dict)"
    else:
        path = find_suite(source)
        raw, where = _read_yaml(path), f"suite {path}"
    top = validated(SuiteFile, raw, where)
    overrides = {section: dict(values) for section, values in (overrides or {}).items()}
    env_dir = None if overrides.get("dataset", {}).get("data_dir") else os.environ.get("BENCH_DATA_DIR")
    if env_dir:
        overrides.setdefault("dataset", {})["data_dir"] = env_dir
    _apply_overrides(raw, overrides)
    dataset = _dataset(raw["dataset"], path, f"{where}: dataset" + (" (from BENCH_DATA_DIR)" if env_dir else ""))

    checkpoints = [_resolve_checkpoint_path(c, path) for c in top.checkpoints]
    repeated = sorted({c for c in checkpoints if checkpoints.count(c) > 1})
    if repeated:
        raise BenchError(f"{where}: checkpoint {repeated[0]} is listed twice; list each checkpoint once (seeds repeat runs)")

    defaults = validated(Defaults, raw.get("defaults") or {}, f"{where}: defaults")
    strategies, hparam_overrides, sweeps = [], {}, {}
    for i, entry in enumerate(raw["strategies"]):
        strategy, hp, sweep = _strategy(entry, i, defaults, where)
        if any(s.name == strategy.name for s in strategies):
            raise BenchError(f"{where}: two strategies are named '{strategy.name}'; give each a unique 'name'")
        strategies.append(strategy)
        hparam_overrides[strategy.name] = hp
        if sweep:
            sweeps[strategy.name] = sweep
    if sweeps and not dataset.has_validation:
        raise BenchError(f"{where}: a sweep is chosen on validation data, and the dataset has none; "
                         "add validation_size: N (carved from train) or validation_split: NAME")
    needs_validation = {s.name for s in strategies if Hyperparameters(**{**defaults.hyperparameters(), **hparam_overrides[s.name]}).select == "best"}
    if needs_validation and not dataset.has_validation:
        raise BenchError(f"{where}: select: best chooses an epoch on validation data, and the dataset has none; "
                         "add validation_size: N or validation_split: NAME")

    suite = Suite(
        name=top.name or path.stem,
        description=top.description.strip(),
        dataset=dataset,
        checkpoints=checkpoints,
        strategies=strategies,
        seeds=list(defaults.seeds),
        defaults=Hyperparameters(**defaults.hyperparameters()),
        overrides=hparam_overrides,
        sweeps=sweeps,
        sweep_seeds=defaults.sweep_seeds,
        mixed_precision=defaults.mixed_precision,
        path=path,
        serving=validated(ServingSpec, raw.get("serving") or {}, f"{where}: serving"),
        tracking=validated(TrackingSpec, raw.get("tracking") or {}, f"{where}: tracking"),
        screen=validated(ScreenSpec, raw["screen"], f"{where}: screen") if raw.get("screen") is not None else None,
        halving=validated(HalvingSpec, raw["halving"], f"{where}: halving") if raw.get("halving") is not None else None,
    )
    if suite.halving is not None:
        _check_halving(suite, f"{where}: halving")
    if suite.screen is not None:
        _check_screen(suite, f"{where}: screen")
    return suite


def _check_screen(suite: Suite, where: str) -> None:
    """The probe scores on validation examples: a dataset without them cannot be screened by it."""
    if suite.screen.score == "probe" and not suite.dataset.has_validation:
        raise BenchError(f"{where}: the probe scores on validation examples and this dataset has none; "
                         "set dataset: validation_size (carved from train) or choose another score")


def _check_halving(suite: Suite, where: str) -> None:
    """Halving needs a sweep of two or more points to halve; each halved point (its own epochs
    and patience, which a sweep may set) needs rungs below its last epoch and no early stopping
    (patience ends a run between rungs on its own)."""
    swept = [cell for cell in suite.cells() if math.prod(len(values) for _, values in cell.sweep) >= 2]
    if not swept:
        raise BenchError(f"{where}: no strategy has a sweep of two or more points, so there is nothing to halve; "
                         "add a sweep: or remove halving:")
    for cell in swept:
        rungs, hp = suite.rungs(cell), cell.hparams  # derived rungs fall below the last epoch (none for 1 epoch)
        point = f"strategy '{cell.strategy.name}'" + (f" at {cell.point_label()}" if cell.point else "")
        if rungs and rungs[-1] >= hp.epochs:
            raise BenchError(f"{where}: {point} trains {hp.epochs} epoch(s), and a rung must be an epoch before the "
                             f"last (rungs {list(rungs)}); train more epochs or state lower rungs")
        if rungs and hp.patience is not None:
            raise BenchError(f"{where}: {point} stops early (patience), and halving stops points between rungs; "
                             "use one of them")


def _strategy(entry, i: int, defaults: Defaults, where: str) -> tuple[StrategySpec, dict, dict]:
    """One `strategies` entry: (its spec, its hyperparameter overrides, its sweep). Its own
    values and every point of its sweep are validated here."""
    if not isinstance(entry, dict):
        raise BenchError(f"{where}: strategies[{i}]: expected a mapping of keys to values, got {type(entry).__name__}")
    if "kind" not in entry:
        raise BenchError(f"{where}: strategies[{i}] has no 'kind'")
    kind, name = entry["kind"], entry.get("name", entry["kind"])
    validate_strategy_params(kind, {}, f"{where}: strategies[{i}]")  # a known kind, before it names anything
    if not isinstance(name, str) or not name.strip():
        raise BenchError(f"{where}: strategies[{i}]: 'name' must be a non-empty text, got {name!r}")
    swhere = f"{where}: strategy '{name}'"
    hp = {k: v for k, v in entry.items() if k in HPARAM_FIELDS}
    params = {k: v for k, v in entry.items() if k not in HPARAM_FIELDS | {"name", "kind", "sweep"}}
    validate_strategy_params(kind, params, swhere)
    base = {**defaults.hyperparameters(), **hp}
    validated(Hyperparameters, base, swhere)
    if base.get("gradient_checkpointing") and kind in ("head", "cnn"):
        raise BenchError(f"{swhere}: gradient_checkpointing saves the activations of layers that back-propagate, and "
                         f"a {kind} strategy back-propagates through none (its backbone is frozen and computed once); "
                         "set it for full, freeze, lora or peft strategies only")
    sweep = {**(defaults.sweep or {}), **_sweep(entry.get("sweep"), swhere)}
    for key in sweep:
        if key not in HPARAM_FIELDS and key not in _option_names(kind):
            raise BenchError(f"{swhere}: sweep: '{key}' is neither a hyperparameter nor an option of kind '{kind}'")
    for values in itertools.product(*sweep.values()):
        point = dict(zip(sweep, values))
        pwhere = f"{swhere}: sweep point {', '.join(f'{k}={v!r}' for k, v in point.items())}"
        validated(Hyperparameters, {**base, **{k: v for k, v in point.items() if k in HPARAM_FIELDS}}, pwhere)
        validate_strategy_params(kind, {**params, **{k: v for k, v in point.items() if k not in HPARAM_FIELDS}}, pwhere)
    return StrategySpec(name=name, kind=kind, params=params), hp, sweep


def _sweep(raw, where: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise BenchError(f"{where}: 'sweep' must map a hyperparameter or option to a list of values, got {raw!r}")
    for key, values in raw.items():
        if not isinstance(values, list) or not values:
            raise BenchError(f"{where}: sweep: '{key}' must be a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise BenchError(f"{where}: sweep: '{key}' lists a value twice: {values}")
        if key in ("seeds", "mixed_precision", "select", "patience", "compile", "gradient_checkpointing"):
            raise BenchError(f"{where}: sweep: '{key}' cannot be swept (seeds repeat runs; the others are not choices to tune)")
    return dict(raw)


def _option_names(kind: str) -> set:
    return set(inspect.signature(STRATEGIES[kind]).parameters) - {"checkpoint"}


def _read_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BenchError(f"suite {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_SuiteLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or first_line(err)
        raise BenchError(f"suite {path}{where}: malformed YAML ({problem})") from None


def _apply_overrides(raw: dict, overrides: dict) -> None:
    """Command-line values win over the file: written into the raw suite before it is
    validated, so they are checked like the file's own values. A train size replaces a learning
    curve's sizes; the epochs of the command line replace every strategy's own; a data folder
    replaces the source, and with it the suite's class names unless the command line names them
    (a 4-class set in place of a 2-class one must not be refused for the old names)."""
    for section, values in overrides.items():
        if values and raw.get(section) is None:
            raw[section] = {}
        if values and isinstance(raw[section], dict):
            raw[section].update(values)
    dataset, given = raw["dataset"], overrides.get("dataset", {})
    if isinstance(dataset, dict):
        if "train_size" in given:
            dataset.pop("train_sizes", None)
        if given.get("data_dir"):  # relative to where the command runs, not to the suite file
            dataset["data_dir"] = str(absolute(given["data_dir"]))
            dataset.pop("files", None)
            if "label_names" not in given and dataset.pop("label_names", None) is not None:
                print("note: the data folder replaces the suite's dataset: class names are taken from its labels, "
                      "not the suite's label_names (name them with --label-names)", file=sys.stderr)
    if "epochs" in overrides.get("defaults", {}) and isinstance(raw["strategies"], list):
        for entry in raw["strategies"]:
            if isinstance(entry, dict):
                entry.pop("epochs", None)


class _SuiteLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error, not the last value,
    and `5e-5` is a number (YAML 1.1 wants `5.0e-5`; YAML 1.2 and every user read it as one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


_SuiteLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


def absolute(path) -> Path:
    """An absolute, normalised path that keeps symbolic links as they are written: ids hash local
    paths relative to the suite file, and a data folder reached through a link (a `../shared`
    that links elsewhere) must give the ids the same layout gives without one."""
    return Path(os.path.normpath(os.path.abspath(path)))


def _dataset(raw, suite_path: Path, where: str) -> DatasetSpec:
    spec = validated(DatasetSpec, raw, where)
    update = {}
    if spec.data_dir:  # paths written in a suite are relative to the suite file
        update["data_dir"] = str(absolute(suite_path.parent / spec.data_dir))
        folder = Path(update["data_dir"])
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise BenchError(f"{where}: data_dir {folder} {problem}; point data_dir (or BENCH_DATA_DIR) at a folder holding train.csv and test.csv")
    if spec.files:
        update["files"] = {split: str(absolute(suite_path.parent / p)) for split, p in spec.files.items()}
    return spec.model_copy(update=update)


def _resolve_checkpoint_path(spec: str, suite_path: Path) -> str:
    """Relative local directories (./x, ../x, or a folder that exists beside the suite file) are
    relative to the suite file; hub ids stay as they are. A derivation (`#layers=2`) stays on."""
    base, hash_sign, derivation = spec.partition("#")
    beside = suite_path.parent / base
    if base.startswith(("./", "../")) or (not base.startswith("package:") and beside.is_dir()):
        return str(absolute(beside)) + hash_sign + derivation
    return spec
