"""Experiment trackers, through accelerate's own tracker classes: one tracker run per cell.

`--log-with tensorboard mlflow` (or the suite's `tracking: {log_with: [...]}`) gives every
run its own tracker run, named `<checkpoint>/<strategy>[/<sweep point>]/seed<seed>`, with the
run's configuration as hyperparameters; the training loop logs the training loss (mean over
the steps since the last point, over every process) and learning rate every
`tracking.every_steps` steps and the validation figures every epoch (`accelerator.log`), and
the finished row's numbers are logged last, under `final/`. Trackers record a run; they never
change it: nothing here is part of a run_id.

Where records go, unless the tracker's own settings say otherwise: `<report stem>.tracking/`
beside the report (or `tracking.dir`): TensorBoard event files under `tensorboard/`; MLflow
in `mlflow.db` (a local SQLite store: MLflow's file store is in maintenance mode) with
artifacts under `mlflow-artifacts/`, unless MLFLOW_TRACKING_URI is set; W&B under the folder,
project = the suite's name. The other trackers accelerate knows (aim, comet_ml, clearml,
dvclive, swanlab, trackio) are started with the suite's name as their project and their
own defaults.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from accelerate.tracking import (
    LOGGER_TYPE_TO_CLASS,
    MLflowTracker,
    TensorBoardTracker,
    WandBTracker,
    get_available_trackers,
)

from bench.decision.text import short_checkpoint
from bench.errors import BenchError
from bench.results.columns import TRACKED, Status

# the pip name a missing tracker library is installed by
LIBRARIES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb", "comet_ml": "comet-ml",
             "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "trackio": "trackio"}


def check_trackers(names: list[str]) -> None:
    """Unknown tracker names and trackers whose library is not installed: one line each, before
    anything runs."""

    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise BenchError(f"unknown tracker '{name}'; accelerate knows: {', '.join(sorted(LOGGER_TYPE_TO_CLASS))}")
        if name not in available:
            extra = " (pip install -e '.[tracking]' installs tensorboard and mlflow)" if name in ("tensorboard", "mlflow") else ""
            raise BenchError(f"tracker '{name}' needs its library, which is not installed: pip install {LIBRARIES[name]}{extra}")


def tracking_folder(spec, output: Path) -> Path:
    return Path(spec.dir).resolve() if spec.dir else output.parent.resolve() / f"{output.stem}.tracking"


def check_folder(folder: Path) -> None:
    """The trackers' local records can be written: before any run trains, not at its end."""
    if folder.exists() and not folder.is_dir():
        raise BenchError(f"the tracking folder {folder} is a file; pass --log-dir with a folder")
    parent = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(parent, os.W_OK):
        raise BenchError(f"cannot write tracker records under {parent}: no write permission; pass --log-dir with a writable folder")


def run_name(cell) -> str:
    point = "".join(f"/{key}={value}" for key, value in cell.point)
    return f"{short_checkpoint(cell.checkpoint)}/{cell.strategy.name}{point}/seed{cell.seed}"


def trackers_for(names: list[str], folder: Path, suite_name: str, cell) -> list:
    """accelerate tracker objects for one cell (created on every process: accelerate starts
    and logs on the main process only)."""

    name, tags = run_name(cell), {"run_id": cell.run_id(), "suite": suite_name}
    trackers = []
    for tracker in names:
        if tracker == "tensorboard":
            trackers.append(TensorBoardTracker(name, folder / "tensorboard"))
        elif tracker == "mlflow":
            os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
            folder.mkdir(parents=True, exist_ok=True)
            trackers.append(MLflowTracker(suite_name, str(folder / "mlflow-artifacts"), run_name=name, tags=tags))
        elif tracker == "wandb":
            folder.mkdir(parents=True, exist_ok=True)
            trackers.append(WandBTracker(suite_name, name=name, dir=str(folder), tags=[cell.run_id()]))
        else:
            make = LOGGER_TYPE_TO_CLASS[tracker]
            trackers.append(make(suite_name, folder) if make.requires_logging_directory else make(suite_name))
    return trackers


def hyperparameters(cell, revision: str = "") -> dict:
    """The run's configuration as flat key -> scalar (what trackers take as hyperparameters)."""
    values = {
        "run_id": cell.run_id(), "config_id": cell.config_id(), "checkpoint": cell.checkpoint,
        "checkpoint_revision": revision, "strategy": cell.strategy.name, "kind": cell.strategy.kind, "seed": cell.seed,
        "num_processes": cell.num_processes, "mixed_precision": cell.mixed_precision,
        **{f"hparams/{k}": v for k, v in cell.hparams.model_dump().items()},
        **{f"strategy/{k}": v for k, v in cell.strategy.params.items()},
        **{f"dataset/{k}": v for k, v in cell.dataset.model_dump().items()
           if k in ("name", "config", "train_size", "eval_size", "validation_size")},
    }
    return {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str) for k, v in values.items()
            if v is not None}


def final_values(row: dict) -> dict:
    """The finished row's main figures (and whether it finished ok), for the run's last point."""
    out = {"final/ok": float(row.get("status") == Status.OK)}
    for key in TRACKED:
        try:
            number = float(row.get(key))
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            out[f"final/{key}"] = number
    return out


class CellTracking:
    """One cell's tracker runs on the launch's Accelerator: started before the run trains,
    given the row's numbers and finished after it. With no trackers it does nothing."""

    def __init__(self, accelerator, spec, folder: Path, suite_name: str, cell, revision: str = ""):
        self.accelerator = accelerator
        self.every = spec.every_steps if spec.log_with else 0
        self.step = 0
        if not spec.log_with:
            return
        accelerator.log_with = trackers_for(spec.log_with, folder, suite_name, cell)
        accelerator.trackers = []
        accelerator.init_trackers(suite_name, config=hyperparameters(cell, revision))

    def log(self, values: dict, step: int) -> None:
        self.step = max(self.step, step)
        self.accelerator.log(values, step=step)

    def finish(self, row: dict) -> None:
        """The row's numbers as the run's last point, then the tracker runs end."""
        if self.every:
            self.accelerator.log(final_values(row), step=self.step)
        self.close()

    def close(self) -> None:
        for tracker in self.accelerator.trackers if self.every else ():
            tracker.finish()
        if self.every:
            self.accelerator.trackers = []
