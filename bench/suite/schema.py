"""The suite file's schema: every field with its type, range and default, declared once.

Read it as a table. `DatasetSpec` (where the examples come from), `Hyperparameters` (how a
run trains and which epoch it keeps) and `Defaults` (the suite-wide values, seeds, precision
and sweep) are strict pydantic models: unknown keys, wrong types (a number where a path goes,
`true` where a count goes) and values out of range fail with one line naming the field. A
strategy's own options are declared by its function's annotations (bench/inputs/strategies.py) and
checked by a model built from them (`strategy_options_model`). bench/suite/load.py validates the
file and every sweep point with these models and expands them into cells.
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from bench.errors import BenchError

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]  # not empty, not only spaces
MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


class Strict(BaseModel):
    """No unknown keys, no coercion (YAML `true` is not 1, "3" is not 3), immutable."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DatasetSpec(Strict):
    """Where the examples come from and how many of them a run uses. Three disjoint parts:
    train (what the model learns from), validation (every choice: epochs, sweep points) and
    the eval split (the test set, scored once per run, after training)."""

    name: Text | None = None  # a hub dataset id, e.g. "imdb" or "glue" (or a local folder laid out as a hub dataset)
    config: Text | None = None  # the hub dataset's configuration, e.g. "mrpc" of "glue" (load_dataset's second argument)
    files: dict[Literal["train", "eval", "validation"], Text] | None = None  # local files per split
    data_dir: Text | None = None  # a folder holding <split>.csv/.json/.jsonl/.parquet
    train_split: Text = "train"
    eval_split: Text = "test"  # the test split: scored once per run
    validation_split: Text | None = None  # a named split of the source for choices (e.g. "validation")
    validation_size: Positive | None = None  # examples for validation: carved from train, or a sample of validation_split
    text_column: Text = "text"
    text_pair_column: Text | None = None  # a second text (sentence pairs, as GLUE's MRPC or RTE)
    label_column: Text = "label"
    # what each class is called, in label-id order (id i is the i-th sorted label value): exports'
    # id2label, so pipeline() says "positive", not "1". Default: a hub dataset's ClassLabel names,
    # else the label values themselves. Names only: not part of any run_id.
    label_names: Annotated[list[Text], Field(min_length=2)] | None = None
    train_size: Positive | None = None  # None: the whole split (less what validation takes)
    train_sizes: list[Positive] | None = None  # a learning curve: one set of cells per size
    eval_size: Positive | None = None
    shuffle_seed: NonNegative = 42  # fixed, so every cell sees the same examples

    @model_validator(mode="after")
    def _consistent(self):
        if not (self.name or self.files or self.data_dir):
            raise ValueError("give a hub 'name', local 'files' or a 'data_dir'")
        if self.config is not None and not self.name:
            raise ValueError("'config' names a configuration of a hub dataset: give the dataset's 'name' too")
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"label_names must be different names, got {self.label_names}")
        if self.files is not None and not {"train", "eval"} <= set(self.files):
            raise ValueError("files must name both 'train' and 'eval' (and may name 'validation')")
        columns = [c for c in (self.text_column, self.text_pair_column, self.label_column) if c]
        if len(set(columns)) != len(columns):
            raise ValueError(f"text_column, text_pair_column and label_column must be different columns, got {columns}")
        if self.train_size is not None and self.train_sizes is not None:
            raise ValueError("give train_size or train_sizes, not both")
        if self.train_sizes is not None and (not self.train_sizes or len(set(self.train_sizes)) != len(self.train_sizes)):
            raise ValueError(f"train_sizes must be a non-empty list of different sizes, got {self.train_sizes}")
        if self.validation_split is not None and self.validation_split in (self.train_split, self.eval_split):
            raise ValueError(f"validation_split '{self.validation_split}' is also the train or eval split; "
                             "use validation_size to carve validation examples from train")
        return self

    @property
    def has_validation(self) -> bool:
        return bool(self.validation_split or self.validation_size or (self.files and "validation" in self.files))

    @property
    def largest_train_size(self) -> int | None:
        return max(self.train_sizes) if self.train_sizes else self.train_size


class Hyperparameters(Strict):
    """Training settings; the suite's `defaults`, overridable (and sweepable) per strategy."""
    epochs: Positive = 2
    batch_size: Positive = 16  # per device; the global batch is this x processes
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5e-5
    max_length: Annotated[int, Field(ge=2)] = 100  # checked against each tokenizer's special tokens before training
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0  # HF Trainer's default, the seed notebook's
    warmup_ratio: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.0
    # torch.compile: auto = on CUDA (CUDA graphs, static shapes), off on CPU; true / false force it
    compile: bool | Literal["auto"] = "auto"
    # recompute each layer's activations in the backward pass instead of keeping them: memory for time
    gradient_checkpointing: bool = False
    select: Literal["last", "best"] = "last"  # which epoch's weights the run keeps: the last, or the best on validation
    patience: Positive | None = None  # with select: best, stop after this many epochs without a better validation accuracy

    @model_validator(mode="after")
    def _consistent(self):
        if self.patience is not None and self.select != "best":
            raise ValueError("patience (early stopping) needs select: best")
        return self


HPARAM_FIELDS = set(Hyperparameters.model_fields)


class Defaults(Hyperparameters):
    """The suite's `defaults`: hyperparameters, plus what applies to every run."""
    seeds: Annotated[list[NonNegative], Field(min_length=1)] = [42]
    mixed_precision: Literal[MIXED_PRECISIONS] = "auto"
    sweep: dict[str, Annotated[list, Field(min_length=1)]] | None = None  # swept for every strategy
    sweep_seeds: Literal["all", "first"] = "all"  # first: sweep points on the first seed, the chosen point on all

    @model_validator(mode="after")
    def _unique_seeds(self):
        repeated = [s for s in self.seeds if self.seeds.count(s) > 1]
        if repeated:
            raise ValueError(f"seed {repeated[0]} is listed twice; list each seed once")
        return self

    def hyperparameters(self) -> dict:
        return self.model_dump(include=HPARAM_FIELDS)


class ServingSpec(Strict):
    """The suite's `serving`: how each ok run's trained model is timed as a server would call it
    (bench/deploy/serving.py). Not part of any run_id: it measures a run, it does not change it."""

    measure: bool = True  # after every ok run; `--no-serving` turns it off for one launch
    batch_sizes: Annotated[list[Positive], Field(min_length=1)] = [256]  # throughput batches (batch 1 is the latency)
    min_calls: Positive = 100  # batch-1 calls timed, at least (after the warm-up)
    min_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0  # and at least this long, per measurement
    throughput_min_calls: Positive = 5  # calls per throughput batch size, at least
    warmup_calls: NonNegative = 10
    texts: Positive = 512  # requests drawn from the validation split (the test split without one)


class ScreenSpec(Strict):
    """The suite's `screen`: score every checkpoint's frozen features before fine-tuning, and
    fine-tune only those that could be the recommendation (bench/launch/screen.py,
    bench/decision/screening.py). Not part of any run_id: it chooses which runs happen, it does
    not change one."""

    # probe: a linear probe's validation accuracy; hscore-layers: the shrunk H-score of the layer mean
    # (TransformerRanker's default); LogME (You et al. 2021); H-score (Bao et al. 2019) of the last layer
    score: Literal["probe", "hscore-layers", "logme", "hscore"] = "hscore-layers"
    keep: Positive = 2  # the best this many by score are fine-tuned, beside the frontier and the not-clearly-apart
    examples: Positive | None = None  # a fixed-seed sample of the train examples (default: all of them)
    pooling: Literal["pooler", "cls", "mean", "max", "last"] = "mean"  # which frozen features are scored
    resamples: Positive = 200  # bootstrap resamples of the score's interval


class HalvingSpec(Strict):
    """The suite's `halving`: successive halving inside every sweep (Jamieson and Talwalkar 2016):
    all points train to the first rung (an epoch count), the best 1/eta of them by validation
    accuracy continue to the next rung, with every point not clearly worse than them, and so on to
    the suite's epochs (bench/launch/halving.py, bench/decision/selection.py `rung_decision`). Not part of any run_id: a survivor's run is the un-halved run."""

    eta: Annotated[int, Field(ge=2)] = 2  # keep the best 1/eta of a sweep's points at each rung (at least one)
    # and every other point not clearly worse than the weakest of them: a one-sided paired test on the
    # validation examples below this level (Optuna's WilcoxonPruner's default p threshold)
    level: Annotated[float, Field(gt=0, lt=1)] = 0.1
    rungs: Annotated[list[Positive], Field(min_length=1)] | None = None  # epochs; default: epochs/eta, epochs/eta^2, ... down to 1

    @model_validator(mode="after")
    def _ascending(self):
        if self.rungs is not None and sorted(set(self.rungs)) != self.rungs:
            raise ValueError(f"rungs must be epoch counts in increasing order, each once, got {self.rungs}")
        return self

    def rungs_for(self, epochs: int) -> tuple[int, ...]:
        """The rungs a run of `epochs` pauses at: the stated ones, or epochs // eta^k down to 1."""
        if self.rungs is not None:
            return tuple(self.rungs)
        rungs, k = set(), 1
        while epochs // self.eta**k >= 1:
            rungs.add(epochs // self.eta**k)
            k += 1
        return tuple(sorted(rungs))


class TrackingSpec(Strict):
    """The suite's `tracking`: experiment trackers that record each run (bench/train/tracking.py).
    Not part of any run_id: a tracker records a run, it does not change it."""

    log_with: list[Text] = []  # tensorboard, mlflow, wandb, ... (accelerate's names); `--log-with` replaces it
    every_steps: Positive = 10  # training loss and learning rate every this many steps
    dir: Text | None = None  # where local records go; default <report stem>.tracking/ beside the report


class SuiteFile(Strict):
    """The top level of a suite file. `strategies` entries are checked one by one (their keys
    depend on their kind) by bench/suite/load.py."""

    name: Text | None = None
    description: str = ""
    dataset: dict[str, Any]
    checkpoints: Annotated[list[Text], Field(min_length=1)]
    strategies: Annotated[list[dict[str, Any]], Field(min_length=1)]
    defaults: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None  # ServingSpec
    tracking: dict[str, Any] | None = None  # TrackingSpec
    screen: dict[str, Any] | None = None  # ScreenSpec
    halving: dict[str, Any] | None = None  # HalvingSpec


def validated(model: type[BaseModel], raw: Any, where: str) -> BaseModel:
    """`model(**raw)`, or a BenchError of one line naming the first problem."""
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: expected a mapping of keys to values, got {type(raw).__name__}")
    try:
        return model(**raw)
    except ValidationError as err:
        raise BenchError(f"{where}: {describe_error(err, model)}") from None


# What a pydantic error type asks for, in the words of the rest of the tool.
_WANTED = {
    "int_type": "an integer", "int_from_float": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "finite_number": "a finite number",
    "string_too_short": "a non-empty text", "string_pattern_mismatch": "a non-empty text",
    "too_short": "a non-empty list", "none_required": "empty",
}


def describe_error(err: ValidationError, model: type[BaseModel]) -> str:
    """The first error of a pydantic validation as one line: which field, what it must be, what it got."""
    errors = err.errors(include_url=False)
    first = errors[0]
    kind, loc, value = first["type"], [p for p in first["loc"]], first.get("input")
    field = loc[0] if loc else ""
    if kind == "extra_forbidden":
        known = ", ".join(sorted(model.model_fields))
        return f"unknown key '{field}'; known keys: {known}"
    if kind == "missing":
        return f"missing '{'.'.join(map(str, loc))}'"
    if kind == "value_error":  # a model validator's own sentence
        return first["msg"].removeprefix("Value error, ")
    same_field = [e for e in errors if e["loc"][:1] == first["loc"][:1]]
    if len(same_field) > 1 and all(len(e["loc"]) >= 2 and isinstance(e["loc"][1], str) for e in same_field):
        wanted = " or ".join(dict.fromkeys(_wanted(e) for e in same_field))  # a union: every branch failed
        return f"'{field}' must be {wanted}, got {value!r}"
    name = field + "".join(f"[{p}]" if isinstance(p, int) else "" for p in loc[1:])
    return f"'{name}' must be {_wanted(first)}, got {value!r}"


def _wanted(error: dict) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "greater_than":
        return "positive" if ctx.get("gt") == 0 else f"greater than {ctx['gt']}"
    if kind == "greater_than_equal":
        return "zero or more" if ctx.get("ge") == 0 else f"at least {ctx['ge']}"
    if kind == "less_than":
        return f"less than {ctx['lt']}"
    if kind == "less_than_equal":
        return f"at most {ctx['le']}"
    if kind == "literal_error":
        return "one of " + ctx.get("expected", "").replace("'", "")
    if kind == "enum":
        return "one of " + ctx.get("expected", "")
    return _WANTED.get(kind, error["msg"].lower())


def strategy_options_model(kind: str, function) -> type[BaseModel]:
    """A strict model of a strategy's options, from its keyword arguments' annotations and
    defaults (everything but `checkpoint`)."""

    hints = typing.get_type_hints(function, include_extras=True)
    fields = {
        name: (hints[name], param.default)
        for name, param in inspect.signature(function).parameters.items()
        if name != "checkpoint"
    }
    return create_model(f"{kind}_options", __base__=Strict, **fields)
