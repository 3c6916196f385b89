"""Measurements of one run: clocks, warm-up, FLOPs, padding, memory; and the typed result.

Clocks are read only after all queued GPU work is done and every process reached the same
point (`synchronized_clock`), so a figure is the global wall time of the global amount of
work; inside the step loop nothing synchronises (the first steps end the warm-up window with
one synchronised reading). FLOPs are counted by PyTorch's FlopCounterMode on one eager step
of the uncompiled model (under a dispatch mode a compiled call would fall back to eager for
good), per padded token, and scaled by the padded tokens the steady-state steps processed.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.flop_counter import FlopCounterMode


def synchronized_clock(accelerator: Accelerator) -> float:
    """Wall time after all queued GPU work is done and every process got here."""
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)
    accelerator.wait_for_everyone()
    return time.perf_counter()


def charged_train_seconds(seconds: dict) -> float:
    """A run's training clock, as charged: its steps, the train set's frozen outputs it computed,
    and a halved run's pauses (saving and loading its state)."""
    return sum(seconds.get(name, 0.0) for name in ("train_steps", "train_cache", "halving"))


def charged_validation_seconds(seconds: dict) -> float:
    """A run's validation clock, as charged: every epoch's pass and the validation set's frozen outputs."""
    return seconds.get("validation", 0.0) + seconds.get("validation_cache", 0.0)


@dataclasses.dataclass
class RunResult:
    """What one run measured; throughput and MFU are computed from it, not stored."""
    train_loss: float  # of the kept epoch
    test_loss: float  # the test split, scored once after training
    test_accuracy: float
    validation_loss: float | None  # the kept epoch's; None without a validation split
    validation_accuracy: float | None
    degenerate: bool
    train_examples: int
    validation_examples: int | None
    test_examples: int
    epochs: int
    epochs_run: int  # fewer than epochs when early stopping ended the run
    selected_epoch: int  # the epoch whose weights the run kept (and scored on the test split)
    train_tokens: int  # real (non-padding) tokens of the training set, one epoch
    train_seconds: float
    validation_seconds: float | None
    test_seconds: float
    cache_seconds: float | None
    reused_cache_seconds: float | None  # building the frozen outputs this run took from an earlier run
    compile_seconds: float | None
    steady_samples: int
    steady_seconds: float
    steady_padded_tokens: int
    padding_waste: float | None
    flops_per_step: float | None
    flops_per_padded_token: float | None
    peak_tflops: float | None
    peak_memory_mb: float
    memory_measure: str
    compile_mode: str | None  # torch.compile mode, None when not compiled
    history: list
    predictions: list
    serving: dict = dataclasses.field(default_factory=dict)  # the serving columns (bench/deploy/serving.py), main process only

    @property
    def steady_train_samples_per_s(self) -> float | None:
        return self.steady_samples / self.steady_seconds if self.steady_samples > 0 and self.steady_seconds > 0 else None

    @property
    def loss_ratio(self) -> float | None:
        """train loss / validation loss of the kept epoch (the test loss without a validation
        split); None when that loss is 0 (confident, correct logits on a tiny set)."""
        held_out = self.validation_loss if self.validation_loss is not None else self.test_loss
        return self.train_loss / held_out if held_out else None

    @property
    def achieved_tflops(self) -> float | None:
        if not self.flops_per_padded_token or not self.steady_seconds or self.steady_samples <= 0:
            return None
        return self.flops_per_padded_token * self.steady_padded_tokens / self.steady_seconds / 1e12

    @property
    def mfu(self) -> float | None:
        achieved = self.achieved_tflops
        return achieved / self.peak_tflops if achieved and self.peak_tflops else None

    def columns(self) -> dict:
        """The report's metric columns (bench/results/columns.py)."""
        return {
            "train_loss": self.train_loss,
            "validation_loss": self.validation_loss,
            "validation_accuracy": self.validation_accuracy,
            "test_loss": self.test_loss,
            "loss_ratio": self.loss_ratio,
            "test_accuracy": self.test_accuracy,
            "degenerate": self.degenerate,
            "validation_examples": self.validation_examples,
            "epochs_run": self.epochs_run,
            "selected_epoch": self.selected_epoch,
            "train_samples_per_s": self.train_examples * self.epochs_run / self.train_seconds,
            "steady_train_samples_per_s": self.steady_train_samples_per_s,
            "train_tokens_per_s": self.train_tokens * self.epochs_run / self.train_seconds,
            "test_samples_per_s": self.test_examples / self.test_seconds,
            "train_seconds": self.train_seconds,
            "validation_seconds": self.validation_seconds,
            "test_seconds": self.test_seconds,
            "cache_seconds": self.cache_seconds,
            "reused_cache_seconds": self.reused_cache_seconds,
            "compile_seconds": self.compile_seconds,
            "padding_waste": self.padding_waste,
            "train_flops_per_step": self.flops_per_step,
            "achieved_tflops": self.achieved_tflops,
            "peak_tflops": self.peak_tflops,
            "mfu": self.mfu,
            "peak_memory_mb": self.peak_memory_mb,
            "memory_measure": self.memory_measure,
            "compile": self.compile_mode or "off",
            "history": json.dumps(self.history),
            **self.serving,
        }


class Measurements:
    """Owns a run's clocks and counters while it trains.

    `timed(name)` adds a synchronised wall-time interval to `seconds[name]`. `start` marks the
    beginning of training (peak memory from here). The training loop reports each step's padded
    and real tokens (`step`, host-side ints: no GPU sync) and calls `end_warmup` once, after
    the first `warmup_steps` steps; everything after it is the steady state.
    """

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        self.warmup_steps = 0
        self.seconds: dict[str, float] = {}
        self.flops_per_step = self.flops_per_padded_token = None
        self.steps = 0
        self.padded_tokens = self.real_tokens = 0
        self.warmup_at = None  # (seconds into the epoch, samples, padded tokens) when the warm-up ended
        self.memory = PeakMemory(accelerator)

    def timed(self, name: str):
        return _Interval(self, name)

    def count_flops(self, run_one_row, rows: int, width: int | None) -> None:
        """FLOPs of one forward + backward of `rows` rows, on the uncompiled model, counted on
        one row (`run_one_row()`): every counted operation (matmul, attention, convolution) is
        per row, so a step's FLOPs are its rows times one row's, exactly
        (tests/test_decoders.py checks it for every family). Counting costs what the step does:
        1.03 s for MiniLM's 16 rows x 100 tokens on 2 CPU cores, 0.16 s for one row."""
        with FlopCounterMode(display=False) as counter:
            run_one_row()
        self.flops_per_step = counter.get_total_flops() * rows
        self.flops_per_padded_token = self.flops_per_step / (rows * (width or 1))

    def step(self, rows: int, width: int | None, real_tokens: int) -> None:
        self.steps += 1
        self.padded_tokens += rows * (width or 1)
        self.real_tokens += real_tokens

    def end_warmup(self, epoch_start: float, samples: int) -> None:
        """Called once, after the first steps of the first epoch (`samples` so far, this process)."""
        self.warmup_at = (synchronized_clock(self.accelerator) - epoch_start, samples, self.padded_tokens)

    def steady(self, step_seconds: float, samples: int) -> tuple[int, float, int]:
        """(samples, seconds, padded tokens) after the warm-up, of this process, given the wall
        time of all training steps and the samples this process trained on."""
        if self.warmup_at is None:
            return 0, 0.0, 0
        seconds, warm_samples, warm_tokens = self.warmup_at
        return samples - warm_samples, step_seconds - seconds, self.padded_tokens - warm_tokens

    def start(self, warmup_steps: int) -> None:
        """Training begins: peak memory counts from here (the FLOP count and the capture
        before it are not training), and the first `warmup_steps` steps are the warm-up."""
        self.warmup_steps = warmup_steps
        self.memory = PeakMemory(self.accelerator)


class _Interval:
    def __init__(self, measurements: Measurements, name: str):
        self.m, self.name = measurements, name

    def __enter__(self):
        self.start = synchronized_clock(self.m.accelerator)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.elapsed = synchronized_clock(self.m.accelerator) - self.start
            self.m.seconds[self.name] = self.m.seconds.get(self.name, 0.0) + self.elapsed
        return False


class PeakMemory:
    """Peak memory of this run: CUDA max allocated, or on CPU the process's peak RSS
    (reset at the start of the run through /proc/self/clear_refs), max over processes."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        if accelerator.device.type == "cuda":
            self.measure = "cuda_max_allocated"
            torch.cuda.reset_peak_memory_stats(accelerator.device)
        else:
            # peak since the process started where the peak cannot be reset
            self.measure = "cpu_peak_rss" if reset_peak_rss() else "cpu_peak_rss_process"

    def peak_mb(self) -> float:
        if self.measure == "cuda_max_allocated":
            peak = torch.cuda.max_memory_allocated(self.accelerator.device) / 2**20
        else:
            peak = process_memory_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peaks = self.accelerator.gather(torch.tensor([peak], device=self.accelerator.device))
        return float(peaks.max())


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set (VmHWM) to its current one: writing "5" to
    /proc/self/clear_refs (Linux). False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def process_memory_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in MB; 0 where unreadable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
