"""The shipped suites as the benchmarks run them, full size or as a smoke test.

A benchmark reads `suites/<name>.yaml`, changes what it measures (a strategy kept, a sweep cut),
and writes the copy with its data folder made absolute (or replaced by `--data-dir`). With
`--smoke` the copy is shrunk to seconds: few examples, short sequences, short serving windows.
Everything else (checkpoints, strategies, sweeps, screen, halving) stays the shipped suite's, so
a smoke run takes the real code path and fails when a suite and a benchmark drift apart, which
is what the tests run (tests/test_benchmarks.py).
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
IMDB = ROOT.parent / "shared" / "data" / "imdb"

SMOKE_SIZES = {"train_size": 48, "validation_size": 16, "eval_size": 16}
SMOKE_MAX_LENGTH = 32
SMOKE_RESAMPLES = 20
# Serving measured as in a real suite, over a handful of calls.
SMOKE_SERVING = {"batch_sizes": [8], "min_calls": 2, "min_seconds": 0.0, "throughput_min_calls": 1,
                 "warmup_calls": 1, "texts": 16}


def shipped_suite(name: str, data_dir: str | None = None, smoke: bool = False) -> dict:
    """suites/<name>.yaml as a dict, its data folder absolute; shrunk to seconds with `smoke`."""
    raw = yaml.safe_load((SUITES / f"{name}.yaml").read_text())
    dataset = raw["dataset"]
    if data_dir is not None:
        dataset["data_dir"] = str(Path(data_dir).resolve())
    elif "data_dir" in dataset:
        dataset["data_dir"] = str((SUITES / dataset["data_dir"]).resolve())
    if smoke:
        shrink(raw)
    return raw


def shrink(raw: dict) -> None:
    """A suite cut to seconds: every size it sets at most the smoke size, short sequences,
    serving over a few calls, the screen over the few train examples and with a rough interval
    (SMOKE_RESAMPLES bootstrap resamples), every sweep at its two
    ends (still a sweep: chosen on validation, halved where the suite halves)."""
    dataset = raw["dataset"]
    for strategy in raw["strategies"]:
        for key, values in strategy.get("sweep", {}).items():
            strategy["sweep"][key] = [values[0], values[-1]]
    for key, size in SMOKE_SIZES.items():
        if key in dataset or key != "validation_size":
            dataset[key] = min(dataset.get(key) or size, size)
    raw.setdefault("defaults", {})["max_length"] = SMOKE_MAX_LENGTH
    if raw.get("serving", {}).get("measure", True):
        raw["serving"] = {**raw.get("serving", {}), **SMOKE_SERVING}
    if "screen" in raw:
        raw["screen"]["examples"] = min(raw["screen"].get("examples") or dataset["train_size"], dataset["train_size"])
        raw["screen"]["resamples"] = SMOKE_RESAMPLES


def write(raw: dict, folder: Path, name: str | None = None) -> Path:
    """The suite written to folder/<name>.yaml (default: its own name): a path bench/run.py takes."""
    if name is not None:
        raw = {**raw, "name": name}
    path = Path(folder) / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
