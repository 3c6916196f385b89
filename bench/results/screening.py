"""The screening file beside a report, `<stem>.screening.csv`: one row per checkpoint of a
screened suite, its transferability score with its interval, its size, what scoring it took,
and whether the screen kept it and why (bench/launch/screen.py writes it; the decision reads it)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

# every screen's score of the checkpoint, beside the one the suite screens by: the report ranks them all
SCREEN_COLUMNS = {"logme": "logme", "hscore": "hscore", "hscore-layers": "hscore_layers", "probe": "probe"}
COLUMNS = ["checkpoint", "checkpoint_revision", "score_name", "score", "low", "high", "parameters", "examples", "pooling",
           "max_length", "seconds", "kept", "reason", *SCREEN_COLUMNS.values()]
TYPES = {"score": float, "low": float, "high": float, "parameters": int, "examples": int, "max_length": int,
         "seconds": float, "kept": lambda text: text == "True",
         **{column: lambda text: float(text) if text else None for column in SCREEN_COLUMNS.values()}}  # the rest: text


def screening_path(report: Path) -> Path:
    return report.with_name(f"{report.stem}.screening.csv")


def write_screen(path: Path, rows: list[dict]) -> None:
    """The screening file, written whole through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_screen(path: Path) -> list[dict]:
    """The rows of a screening file, typed ([] when there is none)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: TYPES.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(f)]
