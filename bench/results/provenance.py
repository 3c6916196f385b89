"""What sits beside the rows: per-example prediction files, and what code and libraries ran."""

from __future__ import annotations

import datetime
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_predictions(output: Path, run_id: str, started: str, predictions: list, labels: list) -> str:
    """Per-example predictions beside the CSV (for paired comparisons between runs).
    The start time is in the name, so a repeated run never overwrites an earlier one."""
    folder = output.parent / f"{output.stem}.predictions"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.fromisoformat(started).strftime("%Y%m%dT%H%M%SZ")
    path, repeat = folder / f"{run_id}-{stamp}.csv", 1
    while path.exists():  # the same run again within the same second
        repeat += 1
        path = folder / f"{run_id}-{stamp}-{repeat}.csv"
    lines = ["idx,label,prediction,loss"]
    lines += [f"{i},{labels[y]},{labels[p]},{loss:.6f}" for i, y, p, loss in predictions]
    path.write_text("\n".join(lines) + "\n")
    return str(path.relative_to(output.parent))


def library_versions() -> str:
    parts = []
    for name in ("torch", "transformers", "accelerate", "peft", "datasets", "evaluate"):
        try:
            parts.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}=missing")
    return " ".join(parts)


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "bench", "suites"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
        return commit[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"

