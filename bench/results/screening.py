"""The screening file beside a report, `<stem>.screening.csv`: one row per checkpoint of a
screened suite, its transferability score with its interval, its size, what scoring it took,
and whether the screen kept it and why (bench/launch/screen.py writes it; the decision reads it)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

COLUMNS = ["checkpoint", "checkpoint_revision", "score_name", "score", "low", "high", "parameters", "examples", "pooling",
           "max_length", "seconds", "kept", "reason"]
TYPES = {"score": float, "low": float, "high": float, "parameters": int, "examples": int, "max_length": int,
         "seconds": float, "kept": lambda text: text == "True"}  # the other columns are text


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
