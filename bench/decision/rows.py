"""The rows a decision starts from: every report read by the store, one row per run, grouped by
configuration; rows from several devices refused unless the user says they know."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.errors import BenchError
from bench.results.columns import Status
from bench.results.store import one_row_per_run, read_results

NEEDED_COLUMNS = ("run_id", "config_id", "status", "checkpoint", "strategy", "seed", "test_accuracy", "train_seconds")


def load_runs(paths: list[Path]) -> tuple[list[dict], list[dict], list[dict]]:
    """(ok rows, rows of runs that did not finish, stopped rows), one per run_id across all the
    CSVs (the latest ok row wins; a run that failed and later finished counts as finished).
    Stopped rows are halving's: the last one of each run it stopped, even where a later launch
    finished that run (the full grid run into the same report): the budgeted decision is made
    from them. Paused rows, superseded by their run's next row, are in none of the three."""

    rows = []
    for path in paths:
        if not path.is_file():
            raise BenchError(f"report {path} does not exist; pass the CSV that bench/run.py wrote")
        found = read_results(path)
        if found:
            missing = [c for c in NEEDED_COLUMNS if c not in found[0]]
            if missing:
                raise BenchError(f"{path} has no '{missing[0]}' column: it was written by an older version; rerun the suite into a new report")
        older = [row for row in found if not row["config_id"]]  # from before config_id existed: cannot be grouped
        if older:
            print(f"note: {len(older)} row(s) of {path} predate config_id (an older version wrote them) and are left out",
                  file=sys.stderr)
        rows += [{**row, "_folder": str(path.parent)} for row in found if row["config_id"]]
    latest = one_row_per_run(rows)
    ok = [r for r in latest.values() if r["status"] == Status.OK]
    if not ok:
        raise BenchError(f"no ok runs in {', '.join(map(str, paths))}: nothing to compare (see their status and error columns)")
    stopped = {r["run_id"]: r for r in rows if r["status"] == Status.STOPPED}
    not_ok = [r for r in latest.values() if Status(r["status"]).failed]
    return ok, not_ok, list(stopped.values())


def group_by_config(rows: list[dict]) -> dict:
    """config_id -> its rows (one per seed)."""
    groups = {}
    for row in rows:
        groups.setdefault(row["config_id"], []).append(row)
    return groups


def check_devices(rows: list[dict], mixed_ok: bool) -> list[str]:
    """The devices the ok rows ran on. Throughput and cost measured on two devices do not
    compare; several devices are refused unless the user says they know (`--mixed-devices`)."""
    devices = sorted({r.get("device") or "?" for r in rows})
    if len(devices) > 1 and not mixed_ok:
        raise BenchError(f"the rows come from {len(devices)} devices ({'; '.join(devices)}): their speed and cost do not "
                         "compare; report one device's rows, or pass --mixed-devices to compare them anyway (the report says so)")
    return devices

