"""Load a suite's dataset (hub or local files), take its fixed subsets, tokenize them.

The subsets are drawn once with a fixed shuffle seed, so every cell of a suite trains and
evaluates on the same examples. Each evaluation example keeps its position in the
evaluation subset (`idx`), so per-example predictions can be paired across runs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import datasets
import torch

from bench.errors import BenchError, first_line
from bench.suite.schema import DatasetSpec

EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class LoadedData(NamedTuple):
    splits: datasets.DatasetDict  # train, validation (when the suite has one), eval: text, [text_pair], labels, idx
    labels: list  # the sorted label values: label id i stands for labels[i]
    sizes: dict  # rows of each whole split (the report projects a sample's cost to the whole train split)
    names: list  # what each class is called, by label id (exports' id2label)


def load_splits(spec: DatasetSpec) -> LoadedData:
    """The train, validation (when the suite has one) and eval (test) subsets as a
    DatasetDict with columns `text` (and `text_pair` for sentence pairs), `labels`, `idx`;
    the sorted list of label values (label id i stands for labels[i]); the number of rows
    of each whole split; and the class names (`class_names`).

    The train subset is the largest train size the suite asks for; a cell with a smaller
    `train_size` takes its first rows (learning curves are nested). Validation is disjoint
    from train, by row and by text: carved first from the shuffled train split
    (`validation_size`), or taken from a named split, and train rows whose text is also a
    validation text are dropped before the train subset is drawn."""
    raw = _load_raw(spec)
    columns = [c for c in (spec.text_column, spec.text_pair_column, spec.label_column) if c]
    for split in raw:
        missing = [c for c in columns if c not in raw[split].column_names]
        if missing:
            raise BenchError(
                f"dataset {split} split has no column '{missing[0]}'; its columns are "
                f"{', '.join(raw[split].column_names)} (set text_column / text_pair_column / label_column in the suite)"
            )
    raw = {split: dataset.select_columns(columns) for split, dataset in raw.items()}
    splits = {"eval": _sample(raw["eval"], spec.eval_size, spec.shuffle_seed, "eval")}
    train = raw["train"].shuffle(seed=spec.shuffle_seed) if spec.has_validation or spec.largest_train_size else raw["train"]
    if "validation" in raw:
        splits["validation"] = _sample(raw["validation"], spec.validation_size, spec.shuffle_seed, "validation")
    elif spec.validation_size:
        if spec.validation_size >= len(train):
            raise BenchError(f"dataset train split has {len(train)} rows: too few to carve {spec.validation_size} "
                             "validation examples and still train")
        splits["validation"] = train.select(range(spec.validation_size))
        train = train.select(range(spec.validation_size, len(train)))
    if "validation" in splits:
        train = _without_texts_of(train, splits["validation"], spec)
    size = spec.largest_train_size
    if size is not None and size > len(train):
        rest = " after the validation examples" if "validation" in splits else ""
        raise BenchError(f"dataset train split has {len(train)} rows{rest}, fewer than the {size} the suite asks for")
    splits["train"] = train.select(range(size)) if size is not None else train
    _check_texts(splits, spec)
    values = check_labels(set().union(*(set(d[spec.label_column]) for d in splits.values())), spec.label_column)
    names = class_names(spec, values, raw["train"].features.get(spec.label_column))
    label_id = {value: i for i, value in enumerate(values)}

    def standardize(batch, indices):
        out = {
            "text": [str(t) for t in batch[spec.text_column]],
            "labels": [label_id[v] for v in batch[spec.label_column]],
            "idx": indices,
        }
        if spec.text_pair_column:
            out["text_pair"] = [str(t) for t in batch[spec.text_pair_column]]
        return out

    order = [s for s in ("train", "validation", "eval") if s in splits]
    out = datasets.DatasetDict(
        {
            split: splits[split].map(
                standardize,
                batched=True,
                with_indices=True,
                remove_columns=splits[split].column_names,
                desc=f"preparing {split}",
            )
            for split in order
        }
    )
    return LoadedData(out, values, {split: len(dataset) for split, dataset in raw.items()}, names)


def class_names(spec: DatasetSpec, values: list, feature=None) -> list[str]:
    """What each class is called, by label id: the suite's `label_names`, else the names of a
    hub dataset's ClassLabel column (glue/mrpc: not_equivalent, equivalent), else the label
    values as text."""
    if spec.label_names is not None:
        if len(spec.label_names) != len(values):
            raise BenchError(f"dataset label_names lists {len(spec.label_names)} names, but column '{spec.label_column}' "
                             f"has {len(values)} classes ({', '.join(map(str, values[:6]))}); give one name per class, "
                             "in the order of the sorted label values")
        return list(spec.label_names)
    if isinstance(feature, datasets.ClassLabel) and values == list(range(len(values))) and feature.num_classes == len(values):
        return list(feature.names)
    return [str(value) for value in values]


def _sample(dataset, size: int | None, seed: int, split: str):
    """A fixed-seed sample of `size` rows (the whole split when None)."""
    if size is None:
        return dataset
    if size > len(dataset):
        raise BenchError(f"dataset {split} split has {len(dataset)} rows, fewer than the {size} the suite asks for")
    return dataset.shuffle(seed=seed).select(range(size))


def _without_texts_of(train, validation, spec: DatasetSpec):
    """The train rows whose text (and pair) is not also a validation text: a duplicated review
    in both would be a validation example the model trained on."""
    def key(dataset):
        pairs = dataset[spec.text_pair_column] if spec.text_pair_column else [None] * len(dataset)
        return list(zip(dataset[spec.text_column], pairs))

    held = set(key(validation))
    keep = [i for i, k in enumerate(key(train)) if k not in held]
    return train if len(keep) == len(train) else train.select(keep)


def _check_texts(splits: dict, spec: DatasetSpec) -> None:
    for split, dataset in splits.items():
        for column in filter(None, (spec.text_column, spec.text_pair_column)):
            blank = [i for i, t in enumerate(dataset[column]) if t is None or not str(t).strip()]
            if blank:
                raise BenchError(
                    f"dataset {split} split: {len(blank)} empty or missing text(s) in column '{column}' "
                    f"(first at row {blank[0]} of the subset); fill or drop those rows"
                )


def check_labels(found: set, column: str) -> list:
    """The sorted label values (label id i stands for values[i]). Strings are class names;
    numbers must be the integers 0..K-1 (floats, NaN, gaps or negatives are refused)."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in found):
        raise BenchError(f"dataset column '{column}' has empty labels; fill or drop those rows")
    numbers = [v for v in found if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers and len(numbers) != len(found):
        raise BenchError(f"dataset column '{column}' mixes numbers and text labels; use one kind")
    if numbers:
        if any(float(v) != int(v) for v in numbers):
            raise BenchError(f"dataset column '{column}' has non-integer labels ({sorted(numbers)[:4]}); labels must be 0..K-1 or class names")
        values = sorted(int(v) for v in numbers)
        if len(values) >= 2 and values != list(range(len(values))):
            raise BenchError(f"dataset column '{column}' labels are {values[:6]}; numeric labels must be 0..K-1")
    else:
        looks_numeric = [v for v in found if str(v).strip().lstrip("-").isdigit()]
        if looks_numeric and len(looks_numeric) != len(found):  # "0", "1", "neg", "pos" read from one CSV column
            names = sorted(set(found) - set(looks_numeric), key=str)
            raise BenchError(f"dataset column '{column}' mixes numbers ({', '.join(sorted(map(str, looks_numeric))[:4])}) and "
                             f"class names ({', '.join(map(str, names[:4]))}); use one kind, or each class would be counted twice")
        values = sorted(found, key=str)
    if len(values) < 2:
        raise BenchError(f"dataset column '{column}' holds a single label ({values[0]!r}); need at least 2 classes")
    return values


def tokenize(splits: datasets.DatasetDict, tokenizer, max_length: int) -> datasets.DatasetDict:
    """Truncate to max_length, no padding: batches are padded to their own longest example
    by the collator. `datasets` caches the result on disk, keyed by the tokenizer."""
    pairs = "text_pair" in splits["train"].column_names

    def encode(batch):
        # pairs: [CLS] a [SEP] b [SEP] with the family's own segment ids; truncation trims the longer text first
        return tokenizer(batch["text"], batch["text_pair"] if pairs else None, truncation=True, max_length=max_length)

    return splits.map(encode, batched=True, remove_columns=["text", "text_pair"] if pairs else ["text"], desc="tokenizing")


def _load_raw(spec: DatasetSpec) -> dict:
    if spec.data_dir:
        folder = Path(spec.data_dir)
        files = {}
        if not folder.is_dir():
            raise BenchError(f"data directory {folder}{_from_env(folder)} does not exist; pass --data-dir with a folder "
                             f"holding {spec.train_split}.csv and {spec.eval_split}.csv")
        for split, name in _named_splits(spec):
            found = [folder / f"{name}{ext}" for ext in EXTENSIONS if (folder / f"{name}{ext}").is_file()]
            if not found:
                raise BenchError(
                    f"data directory {folder}{_from_env(folder)} has no {name}.csv/.json/.jsonl/.parquet for the {split} split"
                )
            files[split] = str(found[0])
        return _load_files(files)
    if spec.files:
        for split, path in spec.files.items():
            if not Path(path).is_file():
                raise BenchError(f"dataset file for the {split} split does not exist: {path}")
        return _load_files(spec.files)
    check_config(spec)
    try:
        hub = datasets.load_dataset(spec.name, spec.config)
    except Exception as err:  # noqa: BLE001 - the hub raises many types: ConnectionError, DatasetNotFoundError, ...
        raise BenchError(
            f"cannot load dataset '{_named(spec)}' from the hub ({first_line(err)}); for local files pass "
            f"--data-dir DIR or set BENCH_DATA_DIR to a folder holding {spec.train_split}.csv and {spec.eval_split}.csv"
        ) from None
    for _, name in _named_splits(spec):
        if name not in hub:
            raise BenchError(f"dataset '{_named(spec)}' has no split '{name}'; it has {', '.join(hub)}")
    return {split: hub[name] for split, name in _named_splits(spec)}


def check_config(spec: DatasetSpec) -> None:
    """A configuration the dataset does not have, or none where it has several, is named with
    the ones it has. Needs the hub (or the local copy) to list them; when they cannot be listed,
    load_dataset says what is wrong."""
    try:
        configs = datasets.get_dataset_config_names(spec.name)
    except Exception:  # noqa: BLE001 -- unreachable or unknown: load_dataset's own error follows
        return
    if spec.config is not None and spec.config not in configs:
        raise BenchError(f"dataset '{spec.name}' has no configuration '{spec.config}'; it has: {', '.join(configs)} "
                         "(set dataset.config to one of them)")
    if spec.config is None and len(configs) > 1:
        raise BenchError(f"dataset '{spec.name}' has several configurations: {', '.join(configs)}; "
                         "set dataset.config to one of them")


def _named(spec: DatasetSpec) -> str:
    return f"{spec.name}/{spec.config}" if spec.config else spec.name


def _named_splits(spec: DatasetSpec) -> list[tuple[str, str]]:
    """(our split, the source's split name): train, eval, and validation when it is named."""
    named = [("train", spec.train_split), ("eval", spec.eval_split)]
    return named + ([("validation", spec.validation_split)] if spec.validation_split else [])


def _from_env(folder: Path) -> str:
    """Names BENCH_DATA_DIR when the folder came from it: the user did not type it."""
    env = os.environ.get("BENCH_DATA_DIR")
    return " (set by the environment variable BENCH_DATA_DIR)" if env and Path(env).resolve() == folder.resolve() else ""


def _load_files(files: dict) -> dict:
    for split, path in files.items():
        if Path(path).suffix == ".csv":
            with open(path, "rb") as f:
                lines = [line for line in (f.readline(), f.readline()) if line.strip()]
            if len(lines) < 2:
                what = "is empty" if not lines else "has a header but no rows"
                raise BenchError(f"dataset file for the {split} split {path} {what}")
    kinds = {EXTENSIONS.get(Path(p).suffix) for p in files.values()}
    if None in kinds or len(kinds) != 1:
        raise BenchError(f"dataset files must all be .csv, .json/.jsonl or .parquet, got {', '.join(files.values())}")
    try:
        loaded = datasets.load_dataset(kinds.pop(), data_files=files)
    except Exception as err:  # noqa: BLE001 - datasets wraps the reader's error; its cause says what is wrong
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        detail = first_line(err) if cause is err else f"{type(cause).__name__}: {first_line(cause)}"
        raise BenchError(f"cannot read dataset files {', '.join(files.values())}: {detail}") from None
    return {split: loaded[split] for split in files}


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of similar length, so dynamic padding pads little (HF Trainer's group_by_length).

    Training (`shuffle=True`): a fresh permutation every pass over the data, cut into
    mega-batches of 50 batches, each sorted by length and cut into batches; the batch order is
    shuffled again. Evaluation (`shuffle=False`): simply sorted by length. Orders come from
    (seed, pass number), so every process of a multi-process run draws the same ones and
    accelerate can hand each its share.

    `short_last` (several processes): the one short batch goes last. accelerate's
    BatchSamplerShard deals batches round-robin and expects only the last to be short: a short
    batch dealt to any process but the first, mid-epoch, made it skip that round, and the
    examples of two batches went untrained that epoch (seen as 4 steps instead of 5).
    """

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool, seed: int = 0, megabatch: int = 50,
                 short_last: bool = False):
        self.lengths, self.batch_size, self.shuffle, self.seed, self.megabatch = lengths, batch_size, shuffle, seed, megabatch
        self.short_last = short_last
        self.passes = 0

    def __len__(self):
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            order = sorted(range(len(self.lengths)), key=lambda i: -self.lengths[i])
            yield from (order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size))
            return
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.passes)
        self.passes += 1
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * self.megabatch
        batches = []
        for start in range(0, len(order), size):
            group = sorted(order[start : start + size], key=lambda i: -self.lengths[i])
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        shuffled = [batches[b] for b in torch.randperm(len(batches), generator=generator).tolist()]
        if self.short_last:
            shuffled.sort(key=lambda batch: len(batch) < self.batch_size)  # stable: the full batches keep their order
        yield from shuffled
