"""One run: train a strategy's plan with Accelerate, validate after every epoch, keep the
chosen epoch, score the test split once, measure.

Read `train_one` top to bottom like accelerate's nlp_example. `prepare_loop` puts the
examples on the device as tensors (the frozen part computed once if the plan allows it,
bench/train/features.py, or taken from an earlier run that computed the same thing), makes loaders
of example indices, AdamW with the linear schedule the seed's HF Trainer used, compiles and
calls `accelerator.prepare`; all of it lives in one `Loop`. Then epochs of `fit_epoch`, each
followed by `record_epoch` (the validation pass; with `select: best` a copy of the trainable
tensors when validation accuracy improves; `patience` stops early), `keep_chosen_epoch`,
and one `evaluate_model` on the test split. `gather_for_metrics` scores every example exactly
once with N processes.

Speed without changing what is computed: with compilation on (by default on CUDA), the
model's forward is compiled with CUDA graphs (`mode="reduce-overhead"`); batches then have
static shapes (padded to max_length, a short last batch padded with rows the loss ignores,
bench/train/batches.py), and the step is compiled and captured before the clocks start, in
`compile_seconds`. No step reads a GPU value back to the host. Evaluation runs eagerly.

A halved sweep's point trains in segments (bench/train/segments.py), computing what one run does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import evaluate
import torch
from accelerate import Accelerator
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from bench.cli import progress_interval
from bench.inputs.data import LengthGroupedBatches
from bench.inputs.strategies import Prepared
from bench.results.outcomes import pack_outcomes
from bench.suite.cells import Cell
from bench.train.batches import ExampleTensors, IndexBatches, length_buckets
from bench.train.compiled import capture_shapes, compile_forward, one_step_no_update, resolve_compile
from bench.train.features import device_examples, to_whole_model
from bench.train.measure import (
    Measurements,
    RunResult,
    charged_train_seconds,
    charged_validation_seconds,
)
from bench.train.segments import Paused, Segment, pause, resume, total_seconds

ACCURACY = str(Path(__file__).resolve().parent / "metrics" / "accuracy")
DIVERGENCE_CHECK_STEPS = 50  # how often the host looks at the (device-side) divergence flag
# Batch widths of a compiled run. Each width is a compilation (tens of seconds for a
# bert-base on an H100); at batch 16 a step is bound by the host, not by padded tokens, so one
# width (max_length) is cheapest end to end. `padding_waste` shows what it costs.
COMPILED_WIDTHS = 1


@dataclasses.dataclass
class Loop:
    """Everything one run's loop works on, so each step below is a short function of it."""
    cell: Cell
    accelerator: Accelerator
    model: torch.nn.Module
    sets: dict  # split -> ExampleTensors: train, validation (when the suite has one), test
    measure: Measurements
    compile_mode: str | None
    cached: bool  # the sets are a frozen part's cached outputs
    reused_cache_seconds: float = 0.0  # building the caches this run took from an earlier run
    rows: int | None = None  # the static batch size of a compiled run
    loaders: dict = dataclasses.field(default_factory=dict)
    optimizer: torch.optim.Optimizer | None = None
    scheduler: object = None
    samples: int = 0  # examples this process trained on
    history: list = dataclasses.field(default_factory=list)
    best: dict | None = None  # the kept epoch: epoch, train_loss, validation figures, trainable tensors
    accuracy: object = None
    tracking: object = None  # the cell's CellTracking (bench/train/tracking.py); None: no trackers
    window: torch.Tensor | None = None  # loss x examples since the last logged step, on the device
    window_examples: int = 0
    earlier_seconds: dict = dataclasses.field(default_factory=dict)  # a halved run's earlier segments
    train_batches: object = None  # the training LengthGroupedBatches


@dataclasses.dataclass(frozen=True)
class RunAids:
    """What a run is given beside its cell, model and tokens."""

    peak_tflops: float | None = None  # this process's peak for the run's matmul dtype (hardware.py): MFU
    shared_features: dict | None = None  # frozen outputs earlier runs or the screen computed (features.py)
    tracking: object = None  # the cell's tracker runs (tracking.py): loss, learning rate, validation
    segment: Segment | None = None  # a halved run's part (module docstring)


def train_one(cell: Cell, accelerator: Accelerator, plan: Prepared, tokenized, tokenizer,
              aids: RunAids = RunAids()) -> RunResult | Paused:
    """Train one cell, choosing its epoch on validation, then score the test split once on the
    weights it keeps; `Paused` when a halved run's segment ends at a rung."""
    hp, peak_tflops, tracking, segment = cell.hparams, aids.peak_tflops, aids.tracking, aids.segment
    loop = prepare_loop(cell, accelerator, plan, tokenized, tokenizer, aids.shared_features)
    if tracking is not None and tracking.every:
        loop.tracking, loop.window = tracking, torch.zeros(1, device=accelerator.device)
    warm_up(loop)
    first, last = (segment.start + 1, segment.until) if segment else (1, hp.epochs)
    if first > 1:
        resume(loop, segment.state(segment.start))  # after the warm-up: its eager step drew random numbers
    name = f"{cell.checkpoint.rsplit('/', 1)[-1]} | {cell.strategy.name} | seed {cell.seed}"
    # a log file (SLURM, a worker) gets a line every 10 s, not every step
    progress = tqdm(total=len(loop.loaders["train"]) * (last - first + 1), leave=False, mininterval=progress_interval(),
                    desc=name + (f" | epochs {first}-{last}" if segment else ""), disable=not accelerator.is_local_main_process)
    for epoch in range(first, last + 1):
        with loop.measure.timed("train_steps") as interval:
            loss_sum, seen = fit_epoch(loop, progress, interval.start)
        loop.samples += seen
        train_loss = global_mean(accelerator, loss_sum, seen)
        record_epoch(loop, epoch, train_loss, interval.elapsed)
        progress.set_postfix(epoch=epoch, train_loss=f"{train_loss:.4f}", **_validation_postfix(loop))
        if stop_early(loop, epoch):
            break
    progress.close()
    if last < hp.epochs and not stop_early(loop, last):
        return pause(loop, segment.state(last), plan)
    keep_chosen_epoch(loop)
    with loop.measure.timed("test"):  # the test split, scored once, on the weights the run keeps
        test = evaluate_model(loop.model, loop.loaders["test"], loop.sets["test"], accelerator, loop.accuracy)
    if len(test["predictions"]) != len(loop.sets["test"]):  # gather_for_metrics must drop the padding
        raise RuntimeError(f"scored {len(test['predictions'])} test examples, expected {len(loop.sets['test'])}")
    to_whole_model(plan.model)  # a cached frozen bottom back in place: the model a server runs on text
    result = collect_result(loop, test, peak_tflops)
    accelerator.free_memory()  # drop the references prepare() kept, before the next cell
    return result


def prepare_loop(cell, accelerator, plan, tokenized, tokenizer, shared_features) -> Loop:
    """Examples on the device (cached outputs of a frozen part where the plan has one),
    loaders, optimizer and schedule, compilation, `accelerator.prepare`."""
    hp = cell.hparams
    measure = Measurements(accelerator)
    model, sets, cached, reused = device_examples(cell, plan, tokenized, tokenizer, accelerator, measure, shared_features)
    compile_mode = resolve_compile(hp.compile, accelerator.device)
    loop = Loop(cell, accelerator, model, sets, measure, compile_mode, cached, reused, rows=hp.batch_size if compile_mode else None)
    buckets = length_buckets(hp.max_length, COMPILED_WIDTHS) if compile_mode else None
    loop.loaders = make_loaders(cell, sets, buckets, accelerator.device)
    loop.train_batches = loop.loaders["train"].batch_sampler  # its pass count is the epoch's draw (resume)
    steps = len(loop.loaders["train"]) * hp.epochs
    loop.optimizer, loop.scheduler = make_optimizer(model, hp, total_steps=steps, cuda=accelerator.device.type == "cuda")
    if compile_mode:
        compile_forward(model, compile_mode)
    names = list(loop.loaders)
    prepared = accelerator.prepare(loop.model, loop.optimizer, *loop.loaders.values(), loop.scheduler)
    loop.model, loop.optimizer, *loaders, loop.scheduler = prepared
    loop.loaders = dict(zip(names, loaders))
    loop.accuracy = evaluate.load(ACCURACY, keep_in_memory=True)  # in memory: no cache files shared between processes
    return loop


def warm_up(loop: Loop) -> None:
    """Count one step's FLOPs (eager, on one row: nothing trains), compile and capture every
    batch shape when compiled, then start the clocks and the memory peak."""
    hp, train_set, accelerator = loop.cell.hparams, loop.sets["train"], loop.accelerator
    widths = loop.loaders["train"].collate_fn.widths() if loop.compile_mode else None
    widest = max(widths) if widths else max(train_set.lengths)
    loop.measure.count_flops(
        lambda: one_step_no_update(loop.model, train_set, widest, 1, None, accelerator),
        loop.rows or min(hp.batch_size, len(train_set)),
        width_of(train_set, widest),
    )
    if loop.compile_mode:
        with loop.measure.timed("compile"):
            capture_shapes(loop.model, train_set, widths, loop.rows, accelerator)
    loop.measure.start(warmup_steps=min(10, max(1, len(loop.loaders["train"]) // 10)))


def global_mean(accelerator, loss_sum: torch.Tensor, seen: int) -> float:
    """The mean training loss over every process's examples."""
    count = accelerator.reduce(torch.tensor(float(seen), device=accelerator.device), "sum")
    return (accelerator.reduce(loss_sum, "sum") / count).item()


def record_epoch(loop: Loop, epoch: int, train_loss: float, seconds: float) -> None:
    """The epoch's figures; with a validation split, its validation pass, and the epoch kept
    when it is the one the run keeps (the last, or with select: best the best so far)."""
    entry = {"epoch": epoch, "train_loss": round(train_loss, 6), "train_seconds": round(seconds, 3)}
    validation = None
    if "validation" in loop.sets:
        with loop.measure.timed("validation"):
            validation = evaluate_model(loop.model, loop.loaders["validation"], loop.sets["validation"], loop.accelerator, loop.accuracy)
        entry.update(validation_loss=round(validation["loss"], 6), validation_accuracy=round(validation["accuracy"], 6),
                     validation_correct=pack_outcomes([label == prediction for _, label, prediction, _ in validation["predictions"]]))
    loop.history.append(entry)
    if loop.tracking is not None:
        figures = {"train/epoch_loss": train_loss}
        if validation is not None:
            figures.update({"validation/loss": validation["loss"], "validation/accuracy": validation["accuracy"]})
        loop.tracking.log(figures, step=loop.measure.steps)
    better = loop.best is None or validation is None or loop.cell.hparams.select == "last" or (
        validation["accuracy"] > loop.best["validation"]["accuracy"]
    )
    if better:
        weights = trainable_copy(loop.model) if loop.cell.hparams.select == "best" else None
        loop.best = {"epoch": epoch, "train_loss": train_loss, "validation": validation, "weights": weights}


def stop_early(loop: Loop, epoch: int) -> bool:
    """select: best with patience: stop when the last `patience` epochs found nothing better."""
    patience = loop.cell.hparams.patience
    return patience is not None and epoch - loop.best["epoch"] >= patience


def keep_chosen_epoch(loop: Loop) -> None:
    """select: best puts back the kept epoch's trainable tensors (the rest never changed)."""
    if loop.best["weights"] is not None and loop.best["epoch"] != loop.history[-1]["epoch"]:
        with torch.no_grad():
            for name, param in loop.model.named_parameters():
                if name in loop.best["weights"]:
                    param.copy_(loop.best["weights"][name])


def trainable_copy(model: torch.nn.Module) -> dict:
    """Copies of the trainable tensors, the only ones training changes."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _validation_postfix(loop: Loop) -> dict:
    last = loop.history[-1]
    return {"val_acc": f"{last['validation_accuracy']:.4f}"} if "validation_accuracy" in last else {}


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops and is recorded `diverged`."""
    def __init__(self, step: int, epoch: int):
        super().__init__(f"training loss became NaN or infinite at step {step} (epoch {epoch})")
        self.step = step


def fit_epoch(loop: Loop, progress, epoch_start: float):
    """One pass over the training batches. Returns (sum of loss x examples, on the device;
    examples seen by this process). The loss stays on the device: no sync per step; the
    first non-finite loss is noted on the device and looked at every few steps (`Diverged`)."""
    model, examples, accelerator, measure = loop.model, loop.sets["train"], loop.accelerator, loop.measure
    loader = loop.loaders["train"]
    model.train()
    loss_sum = torch.zeros((), device=accelerator.device)
    first_bad = torch.full((), -1, dtype=torch.long, device=accelerator.device)
    seen = 0
    for batch in loader:
        idx, width = batch["idx"], batch["width"]
        inputs = examples.batch(idx, width, loop.rows)
        outputs = model(**inputs)
        accelerator.backward(outputs.loss)
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
        real = idx.shape[0]
        loss = outputs.loss.detach().float()  # read before the next step replays the graph
        loss_sum += loss * real
        first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), measure.steps + 1, first_bad)
        seen += real
        measure.step(inputs["labels"].shape[0], width_of(examples, width), batch["tokens"])
        progress.update(1)
        if loop.tracking is not None:
            log_training(loop, loss, real)
        if measure.steps == measure.warmup_steps and measure.warmup_at is None:
            measure.end_warmup(epoch_start, loop.samples + seen)
        if measure.steps % DIVERGENCE_CHECK_STEPS == 0:
            check_diverged(first_bad, accelerator, measure, len(loader))
    check_diverged(first_bad, accelerator, measure, len(loader))
    return loss_sum, seen


def log_training(loop: Loop, loss: torch.Tensor, examples: int) -> None:
    """Every `tracking.every` steps: the mean training loss since the last point, over every
    process's examples (one reduce; the only host sync it adds), and the learning rate."""
    loop.window += loss * examples  # on the device: no sync on the steps between points
    loop.window_examples += examples
    if loop.measure.steps % loop.tracking.every:
        return
    counts = torch.cat([loop.window, loop.window.new_tensor([float(loop.window_examples)])])
    total, count = loop.accelerator.reduce(counts, "sum").tolist()
    loop.window.zero_()
    loop.window_examples = 0
    loop.tracking.log({"train/loss": total / count, "train/learning_rate": loop.scheduler.get_last_lr()[0]},
                      step=loop.measure.steps)


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
        "loss": float(losses.double().mean()),
        "accuracy": accuracy.compute()["accuracy"],
        "degenerate": preds.unique().numel() == 1,  # one class for every example: learned nothing usable
        "predictions": rows_out,
    }


def make_loaders(cell: Cell, sets: dict, buckets, device) -> dict:
    """Loaders of example indices, one per split. Batches of similar length: dynamic padding
    then pads little (same seed, same order). On CUDA widths are multiples of 8 (tensor
    cores); evaluation batches are 4x the training batch there."""
    hp = cell.hparams
    multiple = 8 if device.type == "cuda" else 1
    pin = device.type == "cuda"  # pinned + non-blocking copies (bench/launch/sequential.py): no sync per batch
    loaders = {}
    for name, examples in sets.items():
        training = name == "train"
        loaders[name] = DataLoader(
            range(len(examples)),
            batch_sampler=LengthGroupedBatches(examples.lengths, hp.batch_size * (1 if training or not pin else 4),
                                               shuffle=training, seed=cell.seed if training else 0,
                                               short_last=cell.num_processes > 1),
            collate_fn=IndexBatches(examples.lengths, buckets if training else None, multiple),
            pin_memory=pin,
        )
    return loaders


def make_optimizer(model, hp, total_steps: int, cuda: bool):
    """AdamW over the trainable parameters, linear decay (the seed's HF Trainer defaults).
    Steps are counted on the un-sharded loader: the prepared scheduler advances once per
    process per step, as in accelerate's examples."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay, fused=cuda or None)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def width_of(examples: ExampleTensors, width) -> int | None:
    return width if examples.has_sequence else None


def collect_result(loop: Loop, test: dict, peak_tflops) -> RunResult:
    """Global figures: per-process counters summed over processes, clocks already global."""
    measure, accelerator, hp = loop.measure, loop.accelerator, loop.cell.hparams
    seconds, train_set = total_seconds(loop), loop.sets["train"]
    steady = measure.steady(measure.seconds["train_steps"], loop.samples)  # this segment's: a halved run's last
    counts = torch.tensor([steady[0], steady[2], measure.padded_tokens, measure.real_tokens], dtype=torch.float64)
    steady_samples, steady_padded, padded, real = accelerator.reduce(counts.to(accelerator.device), "sum").tolist()
    kept = loop.best
    validation = kept["validation"]
    return RunResult(
        train_loss=kept["train_loss"],
        test_loss=test["loss"],
        test_accuracy=test["accuracy"],
        validation_loss=validation["loss"] if validation else None,
        validation_accuracy=validation["accuracy"] if validation else None,
        degenerate=test["degenerate"],
        train_examples=len(train_set),
        validation_examples=len(loop.sets["validation"]) if "validation" in loop.sets else None,
        test_examples=len(loop.sets["test"]),
        epochs=hp.epochs,
        epochs_run=len(loop.history),
        selected_epoch=kept["epoch"],
        train_tokens=sum(train_set.lengths),
        train_seconds=charged_train_seconds(seconds),
        validation_seconds=charged_validation_seconds(seconds) if "validation" in loop.sets else None,
        test_seconds=seconds["test"] + seconds.get("test_cache", 0.0),
        cache_seconds=sum(seconds.get(f"{s}_cache", 0.0) for s in loop.sets) if loop.cached else None,
        reused_cache_seconds=loop.reused_cache_seconds or None,
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
        compile_mode=loop.compile_mode,
        history=loop.history,
        predictions=test["predictions"],
    )
