"""torch.compile for training and serving: the forward compiled once per model class and mode
(CUDA graphs with `reduce-overhead`, static shapes), and every batch shape captured before the
clocks start. Off by default on CPU (bench/suite/schema.py `compile: auto`)."""

from __future__ import annotations

from types import MethodType

import torch
import torch._dynamo

CAPTURE_CALLS = 3  # CUDA graph trees: a warm-up run, the recording, a first replay


def resolve_compile(setting, device) -> str | None:
    """The torch.compile mode for this run, or None. `auto` compiles on CUDA, where CUDA
    graphs remove the per-kernel launch cost that bounds small-batch steps (measured:
    PERFORMANCE.md), and not on CPU, where compiling takes longer than it saves."""
    cuda = device.type == "cuda"
    if setting == "auto":
        return "reduce-overhead" if cuda else None
    if setting:
        return "reduce-overhead" if cuda else "default"
    return None


_COMPILED: dict = {}


def compile_forward(model: torch.nn.Module, mode: str) -> None:
    """Compile `model.forward` in place (used for training steps; evaluation runs eagerly in
    large batches, see `evaluate_model`). One compiled function per model class and mode is
    shared by every run of the suite, so a run of an architecture already compiled reuses
    its graphs where the guards (which parameters train, train/eval mode) allow."""

    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 64))  # widths x modes x strategies
    key = (type(model), mode)
    if key not in _COMPILED:
        # Static shapes, as the bare CUDA-graph loop that is the reference (PERFORMANCE.md). With
        # dynamic=True and 8 widths, MiniLM took 98 s to compile on an H100.
        _COMPILED[key] = torch.compile(type(model).forward, mode=mode, dynamic=False)
    model.forward = MethodType(_COMPILED[key], model)


def one_step_no_update(model, examples, width, batch_size, rows, accelerator) -> None:
    """Forward + backward on the first examples, eagerly, then the gradients are dropped:
    nothing trains and the random state is restored, so the run is the same with or without it."""
    idx = torch.arange(min(batch_size, len(examples)), device=accelerator.device)
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.compiler.set_stance("force_eager"):
        model.train()
        accelerator.backward(model(**examples.batch(idx, width, rows)).loss)
    for p in model.parameters():
        p.grad = None


def capture_shapes(model, train_set, widths, rows, accelerator) -> None:
    """Compile the training step and capture its CUDA graph for every batch width the run
    will meet, before the clocks start (forward + backward; the gradients are dropped, nothing
    trains). The random state is restored afterwards."""
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    idx = torch.arange(min(rows, len(train_set)), device=accelerator.device)
    with torch.random.fork_rng(devices=devices):
        model.train()
        for width in widths if train_set.has_sequence else [None]:
            for _ in range(CAPTURE_CALLS):
                accelerator.backward(model(**train_set.batch(idx, width, rows)).loss)
                for p in model.parameters():
                    p.grad = None

