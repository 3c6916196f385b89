"""One run: train a strategy's plan with Accelerate, evaluate after every epoch, measure.

Read `train_one` top to bottom like accelerate's nlp_example: examples as tensors on the
device, the frozen part computed once if the plan allows it (bench/caching.py), loaders of
example indices, AdamW with the linear schedule the seed's HF Trainer used, compilation,
`accelerator.prepare`, then epochs of `fit_epoch` followed by `evaluate`, whose
`gather_for_metrics` scores every evaluation example exactly once with N processes.

Speed without changing what is computed: with compilation on (by default on CUDA), the
model's forward is compiled with CUDA graphs (`mode="reduce-overhead"`); batches then have
static shapes (padded to max_length, a short last batch padded with rows the loss ignores,
bench/batches.py), and the step is compiled and captured before the clocks start, in
`compile_seconds`. No step reads a GPU value back to the host. Evaluation runs eagerly.
"""

from __future__ import annotations

from pathlib import Path
from types import MethodType

import evaluate
import torch
from accelerate import Accelerator
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from bench.batches import ExampleTensors, IndexBatches, length_buckets
from bench.caching import build_cache, to_suffix_model
from bench.data import LengthGroupedBatches
from bench.measure import Measurements, RunResult
from bench.strategies import Prepared
from bench.suite import Cell

ACCURACY = str(Path(__file__).resolve().parent / "metrics" / "accuracy")
DIVERGENCE_CHECK_STEPS = 50  # how often the host looks at the (device-side) divergence flag
CAPTURE_CALLS = 3  # CUDA graph trees: a warm-up run, the recording, a first replay
COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Batch widths of a compiled run. Each width is a compilation (tens of seconds for a
# bert-base on an H100); at batch 16 a step is bound by the host, not by padded tokens, so one
# width (max_length) is cheapest end to end. `padding_waste` shows what it costs.
COMPILED_WIDTHS = 1


def train_one(cell: Cell, accelerator: Accelerator, plan: Prepared, tokenized, tokenizer, peak_tflops=None) -> RunResult:
    """Train and evaluate one cell. `peak_tflops`: this process's peak for the run's matmul
    dtype (bench/hardware.py), for MFU."""
    hp = cell.hparams
    device = accelerator.device
    compile_mode = resolve_compile(hp.compile, device)
    measure = Measurements(accelerator)
    model, train_set, eval_set, cached = device_examples(plan, tokenized, tokenizer, hp.max_length, accelerator, measure)

    buckets = length_buckets(hp.max_length, COMPILED_WIDTHS) if compile_mode else None
    rows = hp.batch_size if compile_mode else None  # static batch size for compiled shapes
    train_loader, eval_loader = make_loaders(cell, train_set, eval_set, buckets, device)
    train_widths = train_loader.collate_fn.widths() if buckets else None
    optimizer, scheduler = make_optimizer(model, hp, total_steps=len(train_loader) * hp.epochs, cuda=device.type == "cuda")
    if compile_mode:
        compile_forward(model, compile_mode)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler
    )

    widest = max(train_widths) if train_widths else max(train_set.lengths)
    measure.count_flops(
        lambda: one_step_no_update(model, train_set, widest, hp.batch_size, rows, accelerator),
        rows or min(hp.batch_size, len(train_set)),
        width_of(train_set, widest),
    )
    if compile_mode:
        with measure.timed("compile"):
            capture_shapes(model, train_set, train_widths, rows, accelerator)
    measure.start(warmup_steps=min(10, max(1, len(train_loader) // 10)))

    accuracy = evaluate.load(ACCURACY, keep_in_memory=True)  # in memory: no cache files shared between processes
    history, train_loss, evaluation = [], None, None
    progress = tqdm(
        total=len(train_loader) * hp.epochs,
        desc=f"{cell.checkpoint.rsplit('/', 1)[-1]} | {cell.strategy.name} | seed {cell.seed}",
        disable=not accelerator.is_local_main_process,
        leave=False,
    )
    samples = 0  # examples this process trained on
    for epoch in range(1, hp.epochs + 1):
        with measure.timed("train_steps") as interval:
            loss_sum, seen = fit_epoch(
                model, train_loader, train_set, optimizer, scheduler, accelerator, measure, rows, progress, interval.start, samples
            )
        samples += seen
        train_loss = (accelerator.reduce(loss_sum, "sum") / accelerator.reduce(torch.tensor(float(seen), device=device), "sum")).item()
        with measure.timed("eval"):
            evaluation = evaluate_model(model, eval_loader, eval_set, accelerator, accuracy)
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(train_loss, 6),
                "eval_loss": round(evaluation["eval_loss"], 6),
                "eval_accuracy": round(evaluation["eval_accuracy"], 6),
                "train_seconds": round(interval.elapsed, 3),
            }
        )
        progress.set_postfix(epoch=epoch, train_loss=f"{train_loss:.4f}", acc=f"{evaluation['eval_accuracy']:.4f}")
    progress.close()

    if len(evaluation["predictions"]) != len(eval_set):  # gather_for_metrics must drop the padding
        raise RuntimeError(f"scored {len(evaluation['predictions'])} evaluation examples, expected {len(eval_set)}")
    result = collect_result(measure, accelerator, hp, samples, train_loss, evaluation, history, train_set, eval_set, cached, peak_tflops, compile_mode)
    accelerator.free_memory()  # drop the references prepare() kept, before the next cell
    return result


def device_examples(plan: Prepared, tokenized, tokenizer, max_length: int, accelerator, measure):
    """The examples as tensors on the device and the model that trains on them. Where the plan
    has a frozen part, its outputs are computed once and the model starts after it; the cost
    is counted (the train set's pass in train_seconds, the eval set's in eval_seconds).
    Returns (model, train set, eval set, whether they are cached outputs)."""
    device = accelerator.device
    plan.model.to(device)  # before any pass without gradients: the parameters stay trainable tensors
    set_problem_type(plan.model)
    train_set = ExampleTensors.from_tokenized(tokenized["train"], tokenizer.pad_token_id, max_length, device)
    eval_set = ExampleTensors.from_tokenized(tokenized["eval"], tokenizer.pad_token_id, max_length, device)
    if plan.features is None and plan.frozen_prefix is None:
        return plan.model, train_set, eval_set, False
    dtype = COMPUTE_DTYPES.get(accelerator.mixed_precision, torch.float32)
    with measure.timed("train_cache"):
        train_set = build_cache(plan, accelerator, train_set, dtype)
    with measure.timed("eval_cache"):
        eval_set = build_cache(plan, accelerator, eval_set, dtype)
    model = to_suffix_model(plan.model, plan.frozen_prefix) if plan.frozen_prefix else plan.model
    return model, train_set, eval_set, True


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops and is recorded `diverged`."""

    def __init__(self, step: int, epoch: int):
        super().__init__(f"training loss became NaN or infinite at step {step} (epoch {epoch})")
        self.step = step


def fit_epoch(model, loader, examples, optimizer, scheduler, accelerator, measure, rows, progress, epoch_start, samples_before):
    """One pass over the training batches. Returns (sum of loss x examples, on the device;
    examples seen by this process). The loss stays on the device: no sync per step; the
    first non-finite loss is noted on the device and looked at every few steps (`Diverged`)."""
    model.train()
    loss_sum = torch.zeros((), device=accelerator.device)
    first_bad = torch.full((), -1, dtype=torch.long, device=accelerator.device)
    seen = 0
    for batch in loader:
        idx, width = batch["idx"], batch["width"]
        inputs = examples.batch(idx, width, rows)
        outputs = model(**inputs)
        accelerator.backward(outputs.loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        real = idx.shape[0]
        loss = outputs.loss.detach().float()  # read before the next step replays the graph
        loss_sum += loss * real
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), measure.steps + 1, first_bad)
        seen += real
        measure.step(inputs["labels"].shape[0], width_of(examples, width), batch["tokens"])
        progress.update(1)
        if measure.steps == measure.warmup_steps and measure.warmup_at is None:
            measure.end_warmup(epoch_start, samples_before + seen)
        if measure.steps % DIVERGENCE_CHECK_STEPS == 0:
            check_diverged(first_bad, accelerator, measure, len(loader))
    check_diverged(first_bad, accelerator, measure, len(loader))
    return loss_sum, seen


def check_diverged(first_bad: torch.Tensor, accelerator, measure, steps_per_epoch: int) -> None:
    """Raise `Diverged` if any process saw a non-finite loss (all processes stop together)."""
    step = int(accelerator.gather(first_bad.view(1)).max().item())
    if step >= 0:
        raise Diverged(step, (step - 1) // steps_per_epoch + 1)


@torch.no_grad()
def evaluate_model(model, loader, examples, accelerator, accuracy) -> dict:
    """Mean loss and accuracy over the evaluation set, and per-example predictions. Results
    stay on the device until the pass is over.

    Eager, even when training is compiled: a pass without gradients in large batches (4x the
    training batch on CUDA; per-example results do not depend on the batch) is short, and
    compiling it would cost a second compilation per run."""
    model.eval()
    parts = []
    for batch in loader:
        idx = batch["idx"]
        inputs = examples.batch(idx, batch["width"])
        labels = inputs.pop("labels")  # no labels: the loss is computed here, per example
        with torch.compiler.set_stance("force_eager"):
            logits = model(**inputs).logits
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        # gather_for_metrics drops the samples the sampler repeated to even out the last batch
        parts.append(accelerator.gather_for_metrics((idx, labels, logits.argmax(-1), losses)))
    idx, labels, preds, losses = (torch.cat(column).cpu() for column in zip(*parts))
    accuracy.add_batch(predictions=preds, references=labels)
    rows_out = sorted(zip(idx.tolist(), labels.tolist(), preds.tolist(), losses.tolist()))
    return {
        "eval_loss": float(losses.double().mean()),
        "eval_accuracy": accuracy.compute()["accuracy"],
        "degenerate": preds.unique().numel() == 1,  # one class for every example: learned nothing usable
        "predictions": rows_out,
    }


def make_loaders(cell: Cell, train_set: ExampleTensors, eval_set: ExampleTensors, buckets, device):
    """Loaders of example indices. Batches of similar length: dynamic padding then pads
    little (same seed, same order). On CUDA widths are multiples of 8 (tensor cores)."""
    hp = cell.hparams
    multiple = 8 if device.type == "cuda" else 1
    pin = device.type == "cuda"  # pinned + non-blocking copies (bench/run.py): no sync per batch
    indices = lambda examples: range(len(examples))  # noqa: E731
    train_loader = DataLoader(
        indices(train_set),
        batch_sampler=LengthGroupedBatches(train_set.lengths, hp.batch_size, shuffle=True, seed=cell.seed),
        collate_fn=IndexBatches(train_set.lengths, buckets, multiple),
        pin_memory=pin,
    )
    eval_loader = DataLoader(
        indices(eval_set),
        batch_sampler=LengthGroupedBatches(eval_set.lengths, hp.batch_size * (4 if pin else 1), shuffle=False),
        collate_fn=IndexBatches(eval_set.lengths, None, multiple),
        pin_memory=pin,
    )
    return train_loader, eval_loader


def make_optimizer(model, hp, total_steps: int, cuda: bool):
    """AdamW over the trainable parameters, linear decay (the seed's HF Trainer defaults).
    Steps are counted on the un-sharded loader: the prepared scheduler advances once per
    process per step, as in accelerate's examples."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay, fused=cuda or None)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


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
    import torch._dynamo

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


def set_problem_type(model: torch.nn.Module) -> None:
    """HF classifiers pick their loss on the first call and write it into the config; set it
    up front (single-label cross-entropy) so a compiled forward has no side effect to trace."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "problem_type", "unset") is None and getattr(config, "num_labels", 0) > 1:
            config.problem_type = "single_label_classification"


def width_of(examples: ExampleTensors, width) -> int | None:
    return width if examples.has_sequence else None


def collect_result(measure, accelerator, hp, samples, train_loss, evaluation, history, train_set, eval_set, cached, peak_tflops, compile_mode):
    """Global figures: per-process counters summed over processes, clocks already global."""
    seconds = measure.seconds
    step_seconds = seconds["train_steps"]
    steady = measure.steady(step_seconds, samples)
    counts = torch.tensor([steady[0], steady[2], measure.padded_tokens, measure.real_tokens], dtype=torch.float64)
    steady_samples, steady_padded, padded, real = accelerator.reduce(counts.to(accelerator.device), "sum").tolist()
    return RunResult(
        train_loss=train_loss,
        eval_loss=evaluation["eval_loss"],
        eval_accuracy=evaluation["eval_accuracy"],
        degenerate=evaluation["degenerate"],
        train_examples=len(train_set),
        eval_examples=len(eval_set),
        epochs=hp.epochs,
        train_tokens=sum(train_set.lengths),
        train_seconds=step_seconds + seconds.get("train_cache", 0.0),
        eval_seconds=seconds["eval"] + seconds.get("eval_cache", 0.0),
        cache_seconds=seconds["train_cache"] + seconds["eval_cache"] if cached else None,
        compile_seconds=seconds.get("compile"),
        steady_samples=int(steady_samples),
        steady_seconds=steady[1],
        steady_padded_tokens=int(steady_padded),
        padding_waste=padded / real if train_set.has_sequence and real else None,
        flops_per_step=measure.flops_per_step,
        flops_per_padded_token=measure.flops_per_padded_token,
        peak_tflops=peak_tflops * accelerator.num_processes if peak_tflops else None,
        peak_memory_mb=measure.memory.peak_mb(),
        memory_measure=measure.memory.measure,
        compile_mode=compile_mode,
        history=history,
        predictions=evaluation["predictions"],
    )
