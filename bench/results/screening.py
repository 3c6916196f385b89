"""The screening file beside a report, `<stem>.screening.csv`: one row per checkpoint of a
screened suite, its transferability score with its interval, its size, what scoring it took,
and whether the screen kept it and why (bench/launch/screen.py writes it; the decision reads it)."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ScreenRow:
    """One checkpoint's line of the screening file: the one declaration of its columns, their
    order and their types (a row is checked against it when written, and typed by it when read)."""

    checkpoint: str
    checkpoint_revision: str
    score_name: str  # the screen the suite screens by, and its score with its interval
    score: float
    low: float
    high: float
    parameters: int
    examples: int
    pooling: str
    max_length: int
    seconds: float  # the checkpoint's frozen pass and every score: what screening it cost
    kept: bool
    reason: str
    # every screen's score beside the chosen one (empty where a screen could not be computed,
    # or in files from before it existed): the report ranks them all
    logme: float | None = None
    hscore: float | None = None
    hscore_layers: float | None = None
    probe: float | None = None


FIELDS = dataclasses.fields(ScreenRow)
COLUMNS = [field.name for field in FIELDS]
# a screen's name in a suite (`screen: {score: hscore-layers}`) -> its column
SCREEN_COLUMNS = {field.name.replace("_", "-"): field.name for field in FIELDS if field.default is None}
READERS = {"float": float, "int": int, "str": str, "bool": lambda text: text == "True",
           "float | None": lambda text: float(text) if text else None}


def screening_path(report: Path) -> Path:
    return report.with_name(f"{report.stem}.screening.csv")


def write_screen(path: Path, rows: list[dict]) -> None:
    """The screening file, written whole through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(ScreenRow(**row)) for row in rows)  # a missing or unknown column raises
    os.replace(tmp, path)


def read_screen(path: Path) -> list[dict]:
    """The rows of a screening file, typed ([] when there is none)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        types = {field.name: READERS[field.type] for field in FIELDS}
        return [{k: types[k](v) if k in types else v for k, v in row.items()} for row in csv.DictReader(f)]
