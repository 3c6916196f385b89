"""Successive halving inside a suite's sweeps (`halving:`), driven by the report's rows.

Every point of a halved sweep trains to the first rung (an epoch count) and pauses: its state
goes to `<report stem>.halving/<run_id>/epoch-<rung>/` (accelerate's save_state, bench/train/segments.py)
and a `paused` row records its validation accuracy there and, in its history, which validation
examples it got right. When every point that entered a rung has a row for it, the rung's decision
(bench/decision/selection.py `rung_decision`) is read from those rows alone: while no point beats
the majority class, every point trains one more epoch and the rung is decided there; then the
points that go on load their state and continue to the next rung or the end, and the points
clearly worse than the ones kept get a `stopped` row and lose their folder. Because the decision
depends only on rows, it is the same whatever trained the points (one process, `--workers`, a
rerun after a kill -9), a rerun resumes each point from its last rung instead of repeating it,
and a sweep's first-seed rows from an earlier, un-halved launch count at every rung through their
per-epoch history. A point that failed before a rung is out of that rung's decision (its row says why).
Both launchers act on a `Step` the same way: `settle` for the steps that train nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import shutil
from pathlib import Path

import numpy as np

from bench.cli import log
from bench.decision.selection import RungPoint, rung_decision
from bench.results.columns import Status
from bench.results.outcomes import unpack_outcomes
from bench.results.store import append_row
from bench.train.cell import now

WAITING = object()  # a point's figures at a rung while one of its runs has not reached the rung


class Action(enum.Enum):
    TRAIN = "train"  # from epoch `start` to `until` (a rung, where it pauses, or the last epoch)
    STOP = "stop"  # append its stopped row: a rung found it clearly worse
    WAIT = "wait"  # for its rung's decision: points of its sweep have not reached the rung
    DONE = "done"  # nothing more: finished, stopped, or out (failed before a rung)


@dataclasses.dataclass(frozen=True)
class Step:
    """What a halved cell does next."""
    action: Action
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


def at_rung(row: dict, rung: int, select: str) -> tuple | None:
    """(validation accuracy, which validation examples it got right or None) of the epoch a run
    keeps at `rung` (the last, or with select: best the best so far), from the row's per-epoch
    history; None when it did not get there."""
    history = [h for h in (row.get("history") or []) if h["epoch"] <= rung and "validation_accuracy" in h]
    if not history or history[-1]["epoch"] != rung:
        return None
    kept = history[-1] if select != "best" else max(history, key=lambda h: (h["validation_accuracy"], -h["epoch"]))
    examples = row.get("validation_examples")
    correct = unpack_outcomes(kept["validation_correct"], examples) if "validation_correct" in kept and examples else None
    return kept["validation_accuracy"], correct


@dataclasses.dataclass(frozen=True)
class Rung:
    """One rung of a sweep's replay: the epoch it was taken at (a rung no point learned by moves
    on), every live point's figures there, and the decision; None while some point is WAITING."""
    at: int
    figures: dict
    decision: object = None


def replay(points: dict, by_run: dict, rungs: tuple[int, ...], halving, epochs: int):
    """A sweep's rung decisions so far, from its rows, in order (`Rung`s); the last one has no
    decision when points have not reached it yet. Nothing after the last point standing, and
    nothing once no point has learned by the last epoch (every point then finishes)."""
    majority = next((r.get("validation_majority_rate") for runs in points.values() for run in runs
                     for r in by_run.get(run.run_id(), []) if r.get("validation_majority_rate") is not None), None)
    alive, decided_at = list(points), 0
    for rung in rungs:
        if rung <= decided_at or rung >= epochs:
            continue  # decided already, at a rung that moved on to here or beyond
        if len(alive) == 1:
            return  # the last point standing: nothing left to decide, it trains to the end
        at = rung
        while True:
            figures = {pid: point_at(points[pid], by_run, at) for pid in alive}
            if any(f is WAITING for f in figures.values()):  # some point has not reached the rung yet
                yield Rung(at, figures)
                return
            decision = rung_decision([RungPoint(pid, *(f or (None, None))) for pid, f in figures.items()],
                                     halving.eta, halving.level, majority)
            if decision.decided:
                break
            if at + 1 >= epochs:
                return  # never learned before the end: all of them finish
            at += 1
        yield Rung(at, figures, decision)
        decided_at, alive = at, decision.continuing


def next_step(cell, cells: list, rows: list[dict], rungs: tuple[int, ...], halving) -> Step:
    """What `cell` (a point of a halved sweep) does next, from the report's rows: its sweep's
    decisions so far (`replay`) and its own last rung. `halving`: the suite's HalvingSpec."""
    by_run: dict[str, list] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    mine = by_run.get(cell.run_id(), [])
    if any(r["status"] in (Status.OK, Status.STOPPED) for r in mine):
        return Step(Action.DONE)
    reached = max((r["epochs_run"] for r in mine if r["status"] == Status.PAUSED), default=0)
    epochs = cell.hparams.epochs
    for rung in replay(sweep_points(cell, cells), by_run, rungs, halving, epochs):
        if cell.config_id() not in rung.figures:
            return Step(Action.DONE)  # stopped at an earlier rung
        if rung.decision is None:  # waiting for points of the sweep to reach it
            if reached >= rung.at:
                return Step(Action.WAIT)
            if any(Status(r["status"]).failed for r in mine):
                return Step(Action.DONE)  # out: it failed before this rung
            return Step(Action.TRAIN, reached, rung.at)
        if cell.config_id() not in rung.decision.continuing:
            paused = [r for r in mine if r["status"] == Status.PAUSED and r["epochs_run"] == rung.at]
            if not paused or rung.figures[cell.config_id()] is None:
                return Step(Action.DONE)  # failed before the rung, or an un-halved run's row: nothing to stop
            return Step(Action.STOP, row=stopped_row(paused[-1], rung.at, epochs, rung.decision))
    return Step(Action.TRAIN, reached, epochs)


def sweep_points(cell, cells: list) -> dict[str, list]:
    """config_id -> its runs (the sweep's first-seed runs with `sweep_seeds: first`), in suite order."""
    points: dict[str, list] = {}
    for other in cells:
        if other.tuning_id() == cell.tuning_id() and not other.needs_choice:
            points.setdefault(other.config_id(), []).append(other)
    return points


def point_at(runs: list, by_run: dict[str, list], rung: int):
    """A point's (mean validation accuracy, runs x examples right or None) at `rung` over its
    runs (`by_run`: run_id -> its rows); None when one of them failed before it (out); WAITING
    while one of them has not reached it."""
    found_all = []
    for run in runs:
        rows = by_run.get(run.run_id(), [])
        found = [at_rung(r, rung, run.hparams.select) for r in rows if r["status"] in (Status.PAUSED, Status.OK, Status.STOPPED)]
        found = [f for f in found if f is not None]
        if found:
            found_all.append(found[0])
        elif any(Status(r["status"]).failed for r in rows):
            return None
        else:
            return WAITING
    accuracy = sum(a for a, _ in found_all) / len(found_all)
    outcomes = [c for _, c in found_all]
    same_examples = all(c is not None for c in outcomes) and len({len(c) for c in outcomes}) == 1
    return accuracy, (np.stack(outcomes) if same_examples else None)


def stopped_row(paused: dict, at: int, epochs: int, decision) -> dict:
    """The paused row at the rung it did not pass, as the point's last word: `stopped`, with why."""
    return {**paused, "status": Status.STOPPED, "ended_at": now(),
            "error": f"stopped by halving at epoch {at} of {epochs}: {decision.reasons[paused['config_id']]}; "
                     f"{len(decision.continuing)} point(s) went on"}


def settle(step: Step, output: Path, cell, main: bool = True) -> bool:
    """Carry out a step that trains nothing, the same way in both launchers: STOP appends the
    stopped row (the main process; written once whoever gets there first) and removes the
    point's state, DONE removes it. True when the cell has nothing more to do."""
    if step.action is Action.STOP and main:
        stop_point(output, cell, step.row)
    elif step.action is Action.DONE and main:
        remove_state(output, cell)
    return step.action in (Action.STOP, Action.DONE)


def stop_point(output: Path, cell, row: dict) -> None:
    """A halved point not kept at a rung: its stopped row, written once whoever gets there first
    (decided under the report's lock), and its folder gone."""
    if append_row(output, row, unless_run_has=(Status.OK, Status.STOPPED)):
        log.info(f"    {cell.run_id()} {cell.strategy.name} {cell.point_label()} seed {cell.seed}: {row['error']}")
    remove_state(output, cell)
