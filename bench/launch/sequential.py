"""Run a suite's pending cells one after the other in this launch: one process, or the N
processes of `accelerate launch`, which train each run data-parallel."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from bench.cli import log, show_progress
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.data import load_splits
from bench.inputs.preflight import (
    check_checkpoints,
    check_processes_connected,
    preflight,
)
from bench.launch.halving import Action, Step, next_step, remove_state, settle, state_folder
from bench.launch.plan import (
    announce_plan,
    chosen_point,
    pending_cells,
    print_cells,
    run_context,
    screened,
    selected_cells,
)
from bench.launch.screen import ScreenLaunch, checkpoints_to_train
from bench.options import RunOptions
from bench.results.columns import Status
from bench.results.row import row_summary
from bench.results.store import append_row, check_writable, read_results
from bench.train.cell import Reuse, Runs, now, run_cell
from bench.train.hardware import (
    device_name,
    matmul_dtype,
    peak_tflops,
    resolve_mixed_precision,
    set_cpu_threads,
)
from bench.train.segments import Segment
from bench.train.tracking import CellTracking, tracking_folder


def quiet_bars_when_logging() -> None:
    """Output to a file (a SLURM log, a worker's log): datasets' and transformers' loading bars
    say nothing a log needs; the training bar updates every 10 s (bench.cli.progress_interval) and each run's
    summary line stays."""
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()  # "Loading weights" per run


def run_here(options: RunOptions, suite, output: Path) -> int:
    """Run the suite's pending cells one after the other in this launch (one process, or the N
    processes of `accelerate launch`, which train each run data-parallel)."""
    if not options.dry_run:
        check_writable(output, create_folder=not options.output)  # the default runs/ folder is made
    # non_blocking: batches (pinned by the loaders on CUDA) reach the GPU without the host
    # waiting for the queued steps to finish.
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(suite.mixed_precision),
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
    )
    check_processes_connected(accelerator)
    every_cell = suite.cells(accelerator.num_processes, accelerator.mixed_precision, accelerator.device.type)
    cells = selected_cells(options, every_cell, suite)
    threads = set_cpu_threads(accelerator)
    show_progress(accelerator.is_main_process)
    if accelerator.device.type == "cuda":  # fp32 matmuls on tensor cores (TF32): same training, several times faster
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    revisions = check_checkpoints(suite)
    with accelerator.main_process_first():  # the first process fills datasets' cache, the others read it
        data = load_splits(suite.dataset)  # splits, labels, split sizes, class names; columns and sizes checked
    announce_plan(suite, cells, data, f"{accelerator.num_processes} process(es) on {accelerator.device}")
    counts = preflight(suite, len(data.labels))
    if options.dry_run:
        print_cells(cells, counts)
        pending_cells(cells, output, options.force)  # says how many are done already
        if suite.screen is not None:
            log.info(f"screen: {suite.screen.score} scores every checkpoint before training; the cells above are before the screen")
        if suite.halving is not None:
            log.info(f"halving: each sweep's points pause at the rungs (epochs {', '.join(map(str, sorted({r for c in cells for r in suite.rungs(c)})))}); "
                     f"the best 1/{suite.halving.eta} go on at each, the others stop there")
        return 0
    reuse = Reuse()  # what the runs of this launch compute once: the screen leaves its features there
    with accelerator.main_process_first():  # the main process screens and writes; the others read its verdicts
        screening = ScreenLaunch(accelerator.device, accelerator.mixed_precision, accelerator.is_main_process, reuse,
                                 every_cell)
        kept = checkpoints_to_train(suite, data, output, revisions, screening)
    every_cell, cells = screened(every_cell, kept), screened(cells, kept)
    peak, peak_source = peak_tflops(accelerator.device, matmul_dtype(accelerator.mixed_precision, accelerator.device))
    context = run_context(suite, data, device_name(accelerator.device, threads), peak, peak_source, revisions)
    pending = pending_cells(cells, output, options.force)
    failures, waiting = run_cells(pending, Launch(accelerator, data, output, context, options, suite, every_cell, reuse))
    accelerator.wait_for_everyone()  # a rank ending early can abort its peers (see NOTES)
    accelerator.end_training()
    if waiting:
        log.info(f"{waiting} later-seed run(s) wait for their sweep's first-seed points, which are not all in {output}: "
                 "merge the shards' reports into it and rerun the same command to run them")
    if failures:
        log.info(f"{failures} of {len(cells)} runs did not finish ok; see the status and error columns of {output}")
    return 1 if failures else 0


@dataclasses.dataclass
class Launch:
    """What every run of this launch shares: its processes, data, report, row context, options,
    suite (with every cell: a sweep's points are found among them, a shard or a worker holding
    only some) and what earlier runs computed (`reuse`)."""
    accelerator: Accelerator
    data: object
    output: Path
    context: object
    options: RunOptions
    suite: object
    every_cell: list
    reuse: Reuse = dataclasses.field(default_factory=Reuse)


def run_cells(pending: list, launch: Launch) -> tuple[int, int]:
    """Run the pending cells, appending each row; returns (runs not ok, runs left waiting).
    Always the first cell, in suite order, that can go on: so a halved sweep's points each train
    to a rung, then its survivors go on, before the next sweep starts (bench/launch/halving.py).
    Each run has its own tracker runs. With --force, the rows written before this launch do not
    count for halving's rungs: every point starts over."""

    accelerator, output = launch.accelerator, launch.output
    finished, failures = set(), 0
    since = now() if launch.options.force else ""
    while True:
        accelerator.wait_for_everyone()  # every process reads the report after the main one wrote it
        rows = read_results(output) if output.exists() else []
        cell, step = next_to_run(pending, finished, rows, since, launch)
        if cell is None:
            break
        row = train_cell(cell, step, launch)
        if row["status"] != Status.PAUSED:
            finished.add(cell.run_id())
            failures += row["status"] != Status.OK
            if accelerator.is_main_process and launch.suite.rungs(cell):
                remove_state(output, cell)
    waiting = [cell for cell in pending if cell.run_id() not in finished]
    halted = sum(not cell.needs_choice for cell in waiting)
    if halted:
        log.info(f"{halted} halved sweep point(s) wait at a rung for points of their sweep that are not in {output} "
                 "(another shard's): merge the reports into it and rerun the same command to go on")
    return failures, len(waiting) - halted


def next_to_run(pending: list, finished: set, rows: list, since: str, launch: Launch):
    """(the first pending cell that can go on, its Step), or (None, None) when none can: a
    later seed waits for its sweep's choice, a halved point for its rung's decision (made on
    the rows started since `since`)."""
    suite, output = launch.suite, launch.output
    halving_rows = [r for r in rows if (r.get("started_at") or "") >= since]
    for cell in pending:
        if cell.run_id() in finished:
            continue
        if cell.needs_choice:
            chosen = chosen_point(rows, cell, launch.every_cell)
            if chosen is not None and chosen != cell.config_id():
                finished.add(cell.run_id())  # a point not chosen: its later seeds never run
            if chosen == cell.config_id():
                return cell, Step(Action.TRAIN, 0, cell.hparams.epochs)
            continue
        rungs = suite.rungs(cell)
        if not rungs:
            return cell, Step(Action.TRAIN, 0, cell.hparams.epochs)
        step = next_step(cell, launch.every_cell, halving_rows, rungs, suite.halving)
        if step.action is Action.TRAIN:
            return cell, step
        if settle(step, output, cell, launch.accelerator.is_main_process):
            finished.add(cell.run_id())
    return None, None


def train_cell(cell, step: Step, launch: Launch) -> dict:
    """One run, or one segment of a halved run, trained and its row appended."""
    accelerator, data, output, context, suite, reuse = (launch.accelerator, launch.data, launch.output, launch.context,
                                                        launch.suite, launch.reuse)
    if any(key[0] != cell.checkpoint for key in reuse.features):  # earlier checkpoints' frozen outputs: no later cell needs them
        later = suite.checkpoints[suite.checkpoints.index(cell.checkpoint):]  # the screen's, of the checkpoints to come, stay
        reuse.features = {key: value for key, value in reuse.features.items() if key[0] in later}
    segment = Segment(state_folder(output, cell), step.start, step.until) if suite.rungs(cell) else None
    point = f" | {cell.point_label()}" if cell.point else ""
    part = f" | epochs {step.start + 1}-{step.until} of {cell.hparams.epochs} (halving)" if segment else ""
    every = launch.every_cell
    log.info(f"[{every.index(cell) + 1}/{len(every)}] {cell.checkpoint} | {cell.strategy.name} ({cell.strategy.kind})"
             f"{point} | seed {cell.seed}{part}")
    tracking = CellTracking(accelerator, suite.tracking, tracking_folder(suite.tracking, output), suite.name, cell,
                            context.checkpoint_revisions.get(cell.checkpoint, ""))
    try:
        runs = Runs(accelerator, data.splits, output, context, reuse, launch.options.save)
        row = run_cell(cell, Checkpoint(cell.checkpoint, len(data.labels)), runs, tracking, segment)
        tracking.finish(row)
    finally:
        tracking.close()
    if accelerator.is_main_process:
        append_row(output, row)
        log.info(f"    -> {row_summary(row)}; row {row['run_id']} appended to {output}")
    return row
