"""Successive halving inside a suite's sweeps (`halving:`), driven by the report's rows.

Every point of a halved sweep trains to the first rung (an epoch count) and pauses: its state
goes to `<report stem>.halving/<run_id>/epoch-<rung>/` (accelerate's save_state, bench/train/segments.py)
and a `paused` row records its validation accuracy there. When every point that entered a rung
has a row for it, the rung's decision (bench/decision/selection.py `rung_survivors`) is read
from those rows alone: the survivors load their state and continue to the next rung or the end;
the others get a `stopped` row and lose their folder. Because the decision depends only on rows,
it is the same whatever trained the points (one process, `--workers`, a rerun after a kill -9),
a rerun resumes each point from its last rung instead of repeating it, and a sweep's first-seed
rows from an earlier, un-halved launch count at every rung through their per-epoch history.
A point that failed before a rung is out of that rung's decision (its row says why).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from bench.decision.selection import rung_survivors
from bench.results.columns import Status
from bench.results.store import append_row
from bench.train.cell import now

FAILURES = (Status.FAILED, Status.DIVERGED, Status.OOM)
WAITING = object()  # a point's score at a rung while one of its runs has not reached the rung


@dataclasses.dataclass(frozen=True)
class Step:
    """What a halved cell does next: train (from epoch `start` to `until`), stop (append `row`),
    wait (for its rung's decision) or nothing more (done)."""
    action: str
    start: int = 0
    until: int = 0
    row: dict | None = None


def state_folder(output: Path, cell) -> Path:
    """The folder a halved run owns for its paused states; removed when the run ends."""
    return output.parent / f"{output.stem}.halving" / cell.run_id()


def remove_state(output: Path, cell) -> None:
    folder = state_folder(output, cell)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.parent.is_dir() and not any(folder.parent.iterdir()):
        folder.parent.rmdir()


def score_at(row: dict, rung: int, select: str) -> float | None:
    """The validation accuracy a run had at `rung` (its kept epoch's, as a row at that epoch
    would say), from the row's per-epoch history; None when it did not get there."""
    history = [h for h in (row.get("history") or []) if h["epoch"] <= rung and "validation_accuracy" in h]
    if not history or history[-1]["epoch"] != rung:
        return None
    return max(h["validation_accuracy"] for h in history) if select == "best" else history[-1]["validation_accuracy"]


def next_step(cell, cells: list, rows: list[dict], rungs: tuple[int, ...], eta: int) -> Step:
    """What `cell` (a point of a halved sweep) does next, from the report's rows: the rungs it
    has passed, its sweep's decisions so far, its own last rung."""
    by_run: dict[str, list] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    mine = by_run.get(cell.run_id(), [])
    if any(r["status"] in (Status.OK, Status.STOPPED) for r in mine):
        return Step("done")
    reached = max((r["epochs_run"] for r in mine if r["status"] == Status.PAUSED), default=0)
    points = sweep_points(cell, cells)
    alive = list(points)
    for rung in rungs:
        if len(alive) == 1:
            break  # the last point standing: nothing left to decide, it trains to the end
        scores = {pid: point_score(runs, by_run, rung) for pid, runs in points.items() if pid in alive}
        if cell.config_id() not in scores:
            return Step("done")  # stopped at an earlier rung
        mine_here = scores[cell.config_id()]
        if any(s is WAITING for s in scores.values()):  # some point has not reached the rung yet
            if reached >= rung:
                return Step("wait")
            if any(r["status"] in FAILURES for r in mine):
                return Step("done")  # out: it failed before this rung
            return Step("train", reached, rung)
        alive = rung_survivors([(pid, s) for pid, s in scores.items()], eta)
        if cell.config_id() not in alive:
            paused = [r for r in mine if r["status"] == Status.PAUSED and r["epochs_run"] == rung]
            if not paused or mine_here is None:
                return Step("done")  # failed before the rung, or an un-halved run's row: nothing to stop
            return Step("stop", row=stopped_row(paused[-1], rung, rungs, scores, alive))
    return Step("train", reached, cell.hparams.epochs)


def sweep_points(cell, cells: list) -> dict[str, list]:
    """config_id -> its runs (the sweep's first-seed runs with `sweep_seeds: first`), in suite order."""
    points: dict[str, list] = {}
    for other in cells:
        if other.tuning_id() == cell.tuning_id() and not other.needs_choice:
            points.setdefault(other.config_id(), []).append(other)
    return points


def point_score(runs: list, by_run: dict[str, list], rung: int):
    """A point's mean validation accuracy at `rung` over its runs (`by_run`: run_id -> its rows);
    None when one of them failed before it (out); WAITING while one of them has not reached it."""
    scores = []
    for run in runs:
        rows = by_run.get(run.run_id(), [])
        found = [score_at(r, rung, run.hparams.select) for r in rows if r["status"] in (Status.PAUSED, Status.OK, Status.STOPPED)]
        found = [s for s in found if s is not None]
        if found:
            scores.append(found[0])
        elif any(r["status"] in FAILURES for r in rows):
            return None
        else:
            return WAITING
    return sum(scores) / len(scores)


def stopped_row(paused: dict, rung: int, rungs: tuple, scores: dict, kept: list) -> dict:
    """The paused row at the rung it did not pass, as the point's last word: `stopped`, with why."""
    best = max(s for s in scores.values() if s is not None)
    return {**paused, "status": Status.STOPPED, "ended_at": now(),
            "error": f"stopped by halving at rung {rungs.index(rung) + 1} of {len(rungs)} (epoch {rung}): validation "
                     f"{scores[paused['config_id']]:.4f}; {len(kept)} of {len(scores)} points continued (best {best:.4f})"}


def stop_point(output: Path, cell, row: dict, say) -> None:
    """A halved point not kept at a rung: its stopped row, written once whoever gets there first
    (decided under the report's lock), and its folder gone."""
    if append_row(output, row, unless_run_has=(Status.OK, Status.STOPPED)):
        say(f"    {cell.run_id()} {cell.strategy.name} {cell.point_label()} seed {cell.seed}: {row['error']}")
    remove_state(output, cell)
