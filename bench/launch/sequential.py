"""Run a suite's pending cells one after the other in this launch: one process, or the N
processes of `accelerate launch`, which train each run data-parallel."""

from __future__ import annotations

import sys
from pathlib import Path

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration

from bench.inputs.checkpoints import Checkpoint
from bench.inputs.data import load_splits
from bench.inputs.preflight import (
    check_checkpoints,
    check_processes_connected,
    preflight,
)
from bench.launch.plan import (
    chosen_point,
    pending_cells,
    print_cells,
    run_context,
    say_plan,
    screened,
    selected_cells,
)
from bench.launch.screen import checkpoints_to_train
from bench.options import RunOptions
from bench.results.columns import Status
from bench.results.row import row_summary
from bench.results.store import append_row, check_writable
from bench.train.cell import Reuse, run_cell
from bench.train.hardware import (
    device_name,
    matmul_dtype,
    peak_tflops,
    resolve_mixed_precision,
    set_cpu_threads,
)
from bench.train.tracking import CellTracking, tracking_folder


def quiet_bars_when_logging() -> None:
    """Output to a file (a SLURM log, a worker's log): datasets' and transformers' loading bars
    say nothing a log needs; the training bar updates every 10 s (bench.progress_interval) and each run's
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
    cells = selected_cells(options, every_cell)
    threads = set_cpu_threads(accelerator)
    say = accelerator.print
    if accelerator.device.type == "cuda":  # fp32 matmuls on tensor cores (TF32): same training, several times faster
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    revisions = check_checkpoints(suite)
    with accelerator.main_process_first():  # the first process fills datasets' cache, the others read it
        data = load_splits(suite.dataset)  # splits, labels, split sizes, class names; columns and sizes checked
    say_plan(suite, cells, data, f"{accelerator.num_processes} process(es) on {accelerator.device}", say)
    counts = preflight(suite, len(data.labels))
    if options.dry_run:
        print_cells(cells, counts, accelerator, say)
        pending_cells(cells, output, options.force, say)  # says how many are done already
        if suite.screen is not None:
            say(f"screen: {suite.screen.score} scores every checkpoint before training; the cells above are before the screen")
        return 0
    with accelerator.main_process_first():  # the main process screens and writes; the others read its verdicts
        kept = checkpoints_to_train(suite, data, accelerator.device, accelerator.mixed_precision, output, revisions, say,
                                    write=accelerator.is_main_process)
    every_cell, cells = screened(every_cell, kept), screened(cells, kept)
    peak, peak_source = peak_tflops(accelerator.device, matmul_dtype(accelerator.mixed_precision, accelerator.device))
    context = run_context(suite, data, device_name(accelerator.device, threads), peak, peak_source, revisions)
    pending = pending_cells(cells, output, options.force, say)
    failures, waiting = run_cells(pending, every_cell, accelerator, data, output, context, options.save, say, suite)
    accelerator.wait_for_everyone()  # a rank ending early can abort its peers (see NOTES)
    accelerator.end_training()
    if waiting:
        say(f"{waiting} later-seed run(s) wait for their sweep's first-seed points, which are not all in {output}: "
            "merge the shards' reports into it and rerun the same command to run them")
    if failures:
        say(f"{failures} of {len(cells)} runs did not finish ok; see the status and error columns of {output}")
    return 1 if failures else 0



def run_cells(pending: list, every_cell: list, accelerator, data, output: Path, context, save: bool, say, suite) -> tuple[int, int]:
    """Run the pending cells in order, appending each row; returns (runs not ok, later seeds left
    waiting). `every_cell`: the whole suite's, among which a sweep's first-seed points are found
    (a shard or a worker holds only some of them). Each run has its own tracker runs."""

    splits, labels = data.splits, data.labels
    reuse = Reuse()
    failures, waiting = 0, 0
    for cell in pending:
        if cell.needs_choice:
            accelerator.wait_for_everyone()  # every process reads the report after the main one wrote it
            chosen = chosen_point(output, cell, every_cell)
            if chosen is None:
                waiting += 1
                continue
            if chosen != cell.config_id():
                continue
        if reuse.features and next(iter(reuse.features))[0] != cell.checkpoint:
            reuse.features.clear()  # frozen outputs of the previous checkpoint: no later cell needs them
        point = f" | {cell.point_label()}" if cell.point else ""
        say(f"[{every_cell.index(cell) + 1}/{len(every_cell)}] {cell.checkpoint} | {cell.strategy.name} ({cell.strategy.kind}){point} | seed {cell.seed}")
        tracking = CellTracking(accelerator, suite.tracking, tracking_folder(suite.tracking, output), suite.name, cell,
                                context.checkpoint_revisions.get(cell.checkpoint, ""))
        try:
            row = run_cell(cell, accelerator, Checkpoint(cell.checkpoint, len(labels)), splits, reuse, output, context, save,
                           tracking)
            tracking.finish(row)
        finally:
            tracking.close()
        failures += row["status"] != Status.OK
        if accelerator.is_main_process:
            append_row(output, row)
            say(f"    -> {row_summary(row)}; row {row['run_id']} appended to {output}")
    return failures, waiting

