"""Cell-parallel runs: `bench/run.py --workers N` keeps N cells running at once, each in its own
process with its own Accelerator and one device slot.

A slot is one GPU (`CUDA_VISIBLE_DEVICES`; `--runs-per-gpu K` packs K slots onto each GPU) or,
on CPU, an equal share of the cores (the worker is pinned to them, so it runs that many
threads). Every worker process is `bench/run.py` itself, given the run_ids of one task, so every
run is exactly the run the sequential path makes: same run_id, same global batch, same row,
appended under the report's lock. Its figures equal a sequential run's bit for bit when both
have the same threads (tests/test_workers.py, tests/test_halving.py); on CPU a worker has its
share of the cores, and another thread count sums in another order, so losses may then differ
in their last digits (the row's `device` names the threads). A task is one cell, or the cells that share frozen features
(head and cached-freeze cells of one checkpoint and strategy: every seed and sweep point reuses
one feature pass, as in one sequential process).

The scheduler is the standard library's subprocess module and a poll loop: a worker that dies
(killed, segfault, the out-of-memory killer) leaves a `failed` row for the cell it was running,
with the cause, and the rest of its task goes to a fresh worker. Ctrl-C or SIGTERM stops every
worker; the runs in flight write no row. Later seeds of `sweep_seeds: first` sweeps go out after
every first-seed task has finished, for the chosen points only.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from bench.cli import log, progress_interval, show_progress
from bench.errors import BenchError
from bench.inputs.data import load_splits
from bench.inputs.preflight import check_checkpoints, preflight
from bench.launch.halving import Action, next_step, settle
from bench.launch.plan import (
    announce_plan,
    chosen_point,
    pending_cells,
    run_context,
    screened,
    selected_cells,
)
from bench.launch.screen import ScreenLaunch, checkpoints_to_train
from bench.options import RunOptions, worker_argv
from bench.results.columns import Status
from bench.results.row import RunOutcome, build_row, row_summary
from bench.results.store import (
    append_row,
    check_writable,
    one_row_per_run,
    read_results,
    read_rows,
)
from bench.train.hardware import device_kind, device_name, resolve_mixed_precision

RUN_PY = Path(__file__).resolve().parents[1] / "run.py"


@dataclasses.dataclass
class Slot:
    gpu: int | None  # None on CPU
    cores: list[int]


@dataclasses.dataclass
class Task:
    cells: list  # in suite order; a worker runs them one after the other
    attempt: int = 1


@dataclasses.dataclass
class Worker:
    slot: Slot
    task: Task
    process: subprocess.Popen
    log: Path
    rows_before: Counter  # rows per run_id in the report when the task started


def slots_for(workers: int, runs_per_gpu: int) -> list[Slot]:
    """One GPU per worker (K workers per GPU with --runs-per-gpu K), the CPU cores split evenly."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    gpus = torch.cuda.device_count()
    if gpus and workers > gpus * runs_per_gpu:
        raise BenchError(f"--workers {workers} needs {workers} GPU slots, and this machine has {gpus} GPU(s) x "
                         f"--runs-per-gpu {runs_per_gpu}; lower --workers or raise --runs-per-gpu")
    if workers > len(cores):
        raise BenchError(f"--workers {workers} is more than this machine's {len(cores)} usable CPU cores; "
                         f"use --workers {len(cores)} or fewer")
    share = len(cores) // workers
    return [Slot((n // runs_per_gpu) if gpus else None, cores[n * share:(n + 1) * share]) for n in range(workers)]


def tasks_for(cells: list) -> list[Task]:
    """One task per cell, except cells whose frozen part is computed once and shared (heads,
    cached freezing): one task per checkpoint, train size and strategy, so its sweep points and
    seeds reuse one feature pass."""
    tasks, sharing = [], {}
    for cell in cells:
        shares = cell.strategy.kind in ("head", "cnn") or bool(cell.strategy.params.get("cache_frozen"))
        if not shares:
            tasks.append(Task([cell]))
            continue
        key = (cell.checkpoint, cell.dataset.train_size, cell.strategy.name)
        if key not in sharing:
            sharing[key] = Task([])
            tasks.append(sharing[key])
        sharing[key].cells.append(cell)
    return tasks


def worker_command(options: RunOptions, output: Path, run_ids: list[str]) -> list[str]:
    """bench/run.py with the same suite, options and report, for these run_ids only."""
    return [sys.executable, str(RUN_PY), *worker_argv(options, str(output), run_ids)]


def start(slot: Slot, task: Task, options: RunOptions, output: Path, log_dir: Path) -> Worker:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS"):
        env.pop(name, None)  # each worker is a world of one
    if slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
    log = log_dir / f"{task.cells[0].run_id()}.{task.attempt}.log"
    rows = Counter(r["run_id"] for r in read_rows(output)) if output.exists() else Counter()
    handle = log.open("w")
    process = subprocess.Popen(
        worker_command(options, output, [c.run_id() for c in task.cells]),
        stdout=handle, stderr=subprocess.STDOUT, env=env,
        # between fork and exec only a system call runs (no lock a thread could hold): safe with threads
        preexec_fn=(lambda: os.sched_setaffinity(0, slot.cores)) if hasattr(os, "sched_setaffinity") else None,  # noqa: PLW1509
        start_new_session=True,  # a Ctrl-C reaches the pool, which stops the workers itself
    )
    handle.close()
    return Worker(slot, task, process, log, rows)


def death_cause(code: int, log: Path) -> str:
    """Why a worker ended without writing its cell's row: the signal that killed it, or its last line."""
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (the kernel's out-of-memory killer sends it; see dmesg)" if name == "SIGKILL" else ""
        return f"worker process killed by {name}{hint}"
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f"worker process exited with code {code}: {lines[-1].strip() if lines else 'no output'}"


def finish(worker: Worker, output: Path, context) -> list[Task]:
    """After a worker exits: report its cells' rows; if it died with its task unfinished, write
    a failed row for the cell it was running (the first without a new row, or else a halved
    point that was continuing from a rung) and return the rest of the task to run again."""

    rows = read_results(output) if output.exists() else []
    counts = Counter(r["run_id"] for r in rows)
    latest = {r["run_id"]: r for r in rows}
    code = worker.process.returncode
    missing = []
    for cell in worker.task.cells:
        if counts[cell.run_id()] > worker.rows_before[cell.run_id()]:
            log.info(f"    {cell.run_id()} {cell.strategy.name} seed {cell.seed}"
                     + (f" {cell.point_label()}" if cell.point else "") + f": {row_summary(latest[cell.run_id()])}")
        elif not cell.needs_choice:  # a later seed of a point not chosen writes no row, by design
            missing.append(cell)
    if code in (0, 1):
        if missing:  # it ended normally without running them: they wait (see the worker's log)
            log.info(f"    {len(missing)} run(s) of {worker.log} did not run; see that log")
        return []
    continuing = [c for c in worker.task.cells if c not in missing and latest[c.run_id()]["status"] == Status.PAUSED]
    if not missing and not continuing:
        return []
    in_flight, rest = (missing[0], missing[1:]) if missing else (continuing[0], [])
    cause = death_cause(code, worker.log)
    run = RunOutcome(started_at="", status="failed", error=f"{cause}; its output: {worker.log}")
    append_row(output, build_row(in_flight, context, run))
    log.info(f"    {in_flight.run_id()} {in_flight.strategy.name} seed {in_flight.seed}: FAILED ({cause})")
    return [Task(rest, worker.task.attempt + 1)] if rest else []


def run_pool(cells: list, every_cell: list, options: RunOptions, output: Path, context, slots: list[Slot],
             suite) -> int:
    """Run `cells` (pending, in suite order) on `slots`; returns 1 if any run did not finish ok.
    `every_cell`: the whole suite's, among which sweeps' first-seed points are found. A halved
    sweep's points go out again whenever the rows say they can go on (bench/launch/halving.py)."""

    log_dir = output.parent / f"{output.stem}.logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    first = [c for c in cells if not c.needs_choice]
    later = [c for c in cells if c.needs_choice]
    halved = [c for c in first if suite.rungs(c)]
    queue, dispatched = tasks_for(first), list(first)
    running: list[Worker] = []
    log.info(f"{len(first)} runs" + (" (+ later seeds of chosen points)" if later else "") + f" on {len(slots)} workers ("
             + ", ".join(f"{'GPU ' + str(s.gpu) + ' + ' if s.gpu is not None else ''}{len(s.cores)} core(s)" for s in slots)
             + f"); each worker's output in {log_dir}/")
    bar = tqdm(total=len(first), desc="runs", unit="run", mininterval=progress_interval(), dynamic_ncols=True)
    with logging_redirect_tqdm([log], tqdm_class=tqdm):  # the runs' lines above the bar, not through it
        try:
            while queue or running or later:
                if not queue and not running and later:  # every first-seed point is in: the later seeds of chosen points
                    rows = read_results(output) if output.exists() else []
                    chosen = [c for c in later if chosen_point(rows, c, every_cell) == c.config_id()]
                    queue, later = tasks_for(chosen), []
                    dispatched += chosen
                    bar.total += len(chosen)
                    bar.refresh()
                    continue
                free = [s for s in slots if all(w.slot is not s for w in running)]
                while queue and free:
                    running.append(start(free.pop(0), queue.pop(0), options, output, log_dir))
                time.sleep(0.2)
                for worker in [w for w in running if w.process.poll() is not None]:
                    running.remove(worker)
                    retry = finish(worker, output, dataclasses.replace(context, device=slot_device(worker.slot)))
                    queue = retry + queue
                    if halved:
                        busy = {c.run_id() for t in queue + [w.task for w in running] for c in t.cells}
                        queue += halving_tasks(halved, busy, every_cell, output, suite)
                    bar.update(finished_runs(dispatched, output) - bar.n)
        except BaseException:  # Ctrl-C, SIGTERM: stop every worker; their runs in flight write no row
            stop_workers(running)
            raise
        finally:
            bar.close()
    latest = one_row_per_run(read_results(output)) if output.exists() else {}
    failures = sum(c.run_id() not in latest or Status(latest[c.run_id()]["status"]).failed for c in dispatched)
    if failures:
        log.info(f"{failures} of {len(dispatched)} runs did not finish ok; see the status and error columns of {output}")
    return 1 if failures else 0


def stop_workers(running: list[Worker]) -> None:
    """SIGTERM to every worker still running (each stops as a Ctrl-C would), then SIGKILL to
    any that has not stopped in 30 s."""
    for worker in running:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in running:
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.process.kill()


def halving_tasks(halved: list, busy: set, every_cell: list, output: Path, suite) -> list[Task]:
    """The halved points that can go on now (their rung decided, or not reached yet), as tasks;
    the points a decided rung did not keep get their stopped rows here."""
    rows = read_results(output) if output.exists() else []
    ready = []
    for cell in halved:
        if cell.run_id() in busy:
            continue
        step = next_step(cell, every_cell, rows, suite.rungs(cell), suite.halving)
        if step.action is Action.TRAIN:
            ready.append(cell)
        else:
            settle(step, output, cell)
    return tasks_for(ready)


def finished_runs(cells: list, output: Path) -> int:
    """How many of `cells` have their last row (not paused at a rung)."""
    latest = one_row_per_run(read_results(output)) if output.exists() else {}
    return sum(c.run_id() in latest and latest[c.run_id()]["status"] != Status.PAUSED for c in cells)


def slot_device(slot: Slot) -> str:
    """The `device` column a worker on this slot writes (bench/train/hardware.py's device_name)."""
    return device_name(torch.device("cuda", slot.gpu) if slot.gpu is not None else torch.device("cpu"), len(slot.cores))


def run_with_workers(options: RunOptions, suite, output: Path) -> int:
    """`--workers N`: the same checks as a sequential run, then the pending cells on N worker
    processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise BenchError("--workers starts its own processes, one run each; start it with python, not "
                         "accelerate launch --num_processes N (which trains each run data-parallel)")
    if options.force and suite.halving is not None:  # each worker would start its own clock for what counts
        raise BenchError("--force with --workers cannot rerun a halved suite's rungs; rerun it sequentially, "
                         "pass --no-halving, or write to a new --output")
    show_progress(main_process=True)
    slots = slots_for(options.workers, options.runs_per_gpu)
    check_writable(output, create_folder=not options.output)
    kind = device_kind()
    every_cell = suite.cells(1, resolve_mixed_precision(suite.mixed_precision), kind)
    cells = selected_cells(options, every_cell, suite)
    revisions = check_checkpoints(suite)
    data = load_splits(suite.dataset)
    announce_plan(suite, cells, data, f"{len(slots)} workers of 1 process on {kind}")
    preflight(suite, len(data.labels))
    device = torch.device("cuda" if kind == "cuda" else "cpu")
    # the runs happen in the workers: the screen's features stay here
    kept = checkpoints_to_train(suite, data, output, revisions,
                                ScreenLaunch(device, resolve_mixed_precision(suite.mixed_precision)))
    every_cell, cells = screened(every_cell, kept), screened(cells, kept)
    context = run_context(suite, data, slot_device(slots[0]), None, "", revisions)
    return run_pool(pending_cells(cells, output, options.force), every_cell, options, output, context, slots, suite)

