"""What a launch runs and says: its cells (a shard's, a worker's), those still pending in the
report, the point a sweep's later seeds wait for, and the lines that announce them."""

from __future__ import annotations

from pathlib import Path

from bench.cli import log
from bench.decision.selection import choose
from bench.options import RunOptions
from bench.results.columns import Status
from bench.results.outcomes import majority_rate
from bench.results.provenance import git_commit, library_versions
from bench.results.row import RunContext
from bench.results.store import ok_run_ids, one_row_per_run


def selected_cells(options: RunOptions, cells: list, suite) -> list:
    """The cells this launch runs: every I-th for `--shard I/N` (fixed by the suite's order, the
    same on every machine), or a worker's `--run-ids`. A halved sweep's points are dealt as one,
    so its rungs are decided within one shard's report."""
    if options.shard:
        index, count = options.shard_part()
        units: dict = {}
        for cell in cells:
            key = cell.tuning_id() if suite.rungs(cell) else cell.run_id()
            units.setdefault(key, []).append(cell)
        chosen = {c.run_id() for unit in list(units.values())[index - 1 :: count] for c in unit}
        cells = [c for c in cells if c.run_id() in chosen]
    if options.run_ids:
        wanted = set(options.run_ids)
        cells = [c for c in cells if c.run_id() in wanted]
    return cells


def screened(cells: list, kept: list[str]) -> list:
    """The cells of the checkpoints a screen kept (bench/launch/screen.py)."""
    return [cell for cell in cells if cell.checkpoint in kept]


def pending_cells(cells: list, output: Path, force: bool) -> list:
    """The cells without an ok row in the report (all of them with --force)."""
    done = set() if force else ok_run_ids(output) & {cell.run_id() for cell in cells}
    if done:
        log.info(f"{len(done)} of {len(cells)} runs already have an ok row in {output}: skipped (--force reruns them)")
    return [cell for cell in cells if cell.run_id() not in done]


def chosen_point(report_rows: list, cell, cells) -> str | None:
    """For a later seed of a sweep (`sweep_seeds: first`): the config_id of the point the
    selection protocol chooses from the report's first-seed rows of this sweep ('' when none
    finished), or None while some of this suite's first-seed runs are missing from the report
    (a shard's report holds only its own cells) or paused at a halving rung. First-seed rows
    of points since dropped from the sweep still compete, as they do in the decision report.
    `report_rows`: the report's rows, as read_results gives them."""

    first_seed = [c for c in cells if c.tuning_id() == cell.tuning_id() and not c.needs_choice]
    rows = one_row_per_run(report_rows)
    if any(c.run_id() not in rows or rows[c.run_id()]["status"] == Status.PAUSED for c in first_seed):
        return None  # a first-seed run is missing, or paused at a halving rung
    seed = first_seed[0].seed
    ok = [r for r in rows.values()
          if r["tuning_id"] == cell.tuning_id() and int(r["seed"]) == seed and r["status"] == Status.OK]
    return choose(ok)[0].chosen.config_id if ok else ""


def announce_plan(suite, cells: list, data, where: str) -> None:
    """The suite, how many runs, the split sizes and where they train, as the launch's first lines."""
    splits, labels = data.splits, data.labels
    log.info(f"suite {suite.name}: {suite.description}" if suite.description else f"suite {suite.name}")
    validation = f"{len(splits['validation'])} validation / " if "validation" in splits else "no validation / "
    deferred = sum(cell.needs_choice for cell in cells)
    log.info(f"{len(cells) - deferred} runs" + (f" (+ {deferred} later seeds, run for each sweep's chosen point only)" if deferred else "")
             + f"; {len(splits['train'])} train / {validation}{len(splits['eval'])} test examples, {len(labels)} labels; {where}")


def print_cells(cells, counts: dict) -> None:
    header = f"{'run_id':12}  {'checkpoint':40}  {'strategy':22}  {'kind':6}  {'seed':>4}  {'ep':>2}  {'lr':>8}  {'trainable':>12}  {'total':>12}  {'%':>7}"
    log.info(header)
    log.info("-" * len(header))
    for cell in cells:
        c = counts[cell.checkpoint, cell.strategy.name]
        log.info(
            f"{cell.run_id():12}  {_short(cell.checkpoint, 40):40}  {_short(cell.strategy.name, 22):22}  {cell.strategy.kind:6}  "
            f"{cell.seed:>4}  {cell.hparams.epochs:>2}  {cell.hparams.learning_rate:>8.1e}  {c['trainable_params']:>12,}  "
            f"{c['total_params']:>12,}  {c['trainable_pct']:>7.3f}"
            + (f"  {cell.point_label()}" if cell.point else "") + ("  (if its point is chosen)" if cell.needs_choice else "")
        )


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def validation_source(dataset) -> str:
    if dataset.validation_split:
        return dataset.validation_split
    if dataset.files and "validation" in dataset.files:
        return "validation file"
    return f"carved from {dataset.train_split}" if dataset.validation_size else ""


def run_context(suite, data, device: str, peak, peak_source: str, revisions: dict):
    """What every row of this launch shares: where it ran, data sizes, versions, which weights."""
    splits, labels, split_sizes = data.splits, data.labels, data.sizes
    return RunContext(
        device=device,
        labels=labels,
        train_examples=len(splits["train"]),
        test_examples=len(splits["eval"]),
        train_split_examples=split_sizes["train"],
        validation_split=validation_source(suite.dataset),
        test_split=suite.dataset.eval_split,
        versions=library_versions(),
        git_commit=git_commit(),
        peak_tflops=peak,
        peak_source=peak_source,
        serving=suite.serving if suite.serving.measure else None,
        class_names=data.names,
        checkpoint_revisions=revisions,
        validation_majority_rate=majority_rate(splits["validation"]["labels"]) if "validation" in splits else None,
    )

