"""A halved run's segments (bench/launch/halving.py): train to a rung, keep the state there with
accelerate's `save_state` (model, optimizer, scheduler, random states) and this run's history,
kept epoch and clocks; later, `load_state` and go on. The schedule spans the full epochs and the
batch order is drawn per epoch, so the segments compute what one uninterrupted run computes.
`loop` below is bench/train/loop.py's Loop (this module does not import it: imports go one way)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from bench.train.features import to_whole_model
from bench.train.measure import charged_train_seconds, charged_validation_seconds


@dataclasses.dataclass(frozen=True)
class Segment:
    """Part of a halved run: continue from the state saved after epoch `start` in `folder`
    (0: from the beginning), train to epoch `until` and, before the last epoch, save the state
    there and pause."""
    folder: Path
    start: int
    until: int

    def state(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch}"  # one folder per rung: a kill while saving spoils no earlier rung


@dataclasses.dataclass
class Paused:
    """A run paused at a rung: the figures its `paused` row records (validation at the rung,
    seconds so far), no test score."""
    history: list
    best: dict
    seconds: dict
    validation_examples: int | None

    def columns(self) -> dict:
        validation = self.best["validation"]
        return {
            "train_loss": self.best["train_loss"],
            "validation_loss": validation["loss"] if validation else None,
            "validation_accuracy": validation["accuracy"] if validation else None,
            "validation_examples": self.validation_examples,
            "epochs_run": len(self.history),
            "selected_epoch": self.best["epoch"],
            "train_seconds": charged_train_seconds(self.seconds),
            "validation_seconds": charged_validation_seconds(self.seconds),
            "history": json.dumps(self.history),
        }


def pause(loop, folder: Path, plan) -> Paused:
    """Save what the next segment continues from (accelerate's state: model, optimizer,
    scheduler, random states; and this run's history, kept epoch and seconds), then stop."""
    accelerator = loop.accelerator
    with loop.measure.timed("halving"):  # charged with training: what pausing costs
        accelerator.save_state(str(folder))
    seconds = total_seconds(loop)
    best = {k: v for k, v in loop.best.items() if k != "weights"}
    if accelerator.is_main_process:
        if loop.best["weights"] is not None:
            torch.save(loop.best["weights"], folder / "kept_epoch.pt")
        progress = {"history": loop.history, "best": best, "seconds": seconds, "steps": loop.measure.steps}
        (folder / "progress.json").write_text(json.dumps(progress))
    accelerator.wait_for_everyone()
    to_whole_model(plan.model)
    accelerator.free_memory()
    return Paused(loop.history, best, seconds, len(loop.sets["validation"]) if "validation" in loop.sets else None)


def total_seconds(loop) -> dict:
    """The run's clocks: this segment's plus a halved run's earlier segments'."""
    earlier, now = loop.earlier_seconds, loop.measure.seconds
    return {k: earlier.get(k, 0.0) + now.get(k, 0.0) for k in set(earlier) | set(now)}


def resume(loop, folder: Path) -> None:
    """Continue where a paused segment stopped: accelerate's state back, and the run's history,
    kept epoch and seconds; the batch order continues with the next epoch's draw."""
    with loop.measure.timed("halving"):
        loop.accelerator.load_state(str(folder))
    progress = json.loads((folder / "progress.json").read_text())
    loop.history, loop.earlier_seconds = progress["history"], progress["seconds"]
    weights = folder / "kept_epoch.pt"
    loop.best = {**progress["best"], "weights": torch.load(weights, map_location=loop.accelerator.device) if weights.exists() else None}
    loop.measure.steps = progress["steps"]
    loop.measure.warmup_steps += progress["steps"]  # this segment's warm-up: its own first steps
    loop.train_batches.passes = len(loop.history)
