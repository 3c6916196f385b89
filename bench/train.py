"""One run: train a prepared model with Accelerate, evaluate after every epoch, measure.

Read it top to bottom like accelerate's nlp_example: data loaders, optimizer and linear
schedule (what the seed's HF Trainer used), `accelerator.prepare`, then epochs of
training steps followed by an evaluation pass with `gather_for_metrics` so that with N
processes every evaluation example is scored exactly once.

Clocks: training time covers the training steps (plus, for cached runs, computing the
frozen part's outputs for the train set once); before each clock is read the GPU is
synchronised and the processes meet at a barrier, so the figure is the global wall time for
the global amount of work. Steady-state figures leave out the first steps. FLOPs are counted
by PyTorch's FlopCounterMode on the first real step (forward + backward).
"""

from __future__ import annotations

import time
from pathlib import Path

import evaluate
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from bench.caching import build_cache, cache_kind, collate_cached, to_suffix_model
from bench.data import LengthGroupedBatches
from bench.suite import Cell

ACCURACY = str(Path(__file__).resolve().parent / "metrics" / "accuracy")


def train_one(cell: Cell, accelerator: Accelerator, model: torch.nn.Module, tokenized, tokenizer, peak_tflops=None) -> dict:
    """Train and evaluate; returns the run's measurements and per-example predictions.

    `peak_tflops`: this process's peak for the run's matmul dtype (bench/hardware.py), for MFU.
    """
    hp = cell.hparams
    cuda = accelerator.device.type == "cuda"
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if cuda else None)  # tensor-core friendly shapes

    # What a frozen part of the model would recompute every epoch is computed once (bench/caching.py).
    # The cost is counted: the train set's share in train_seconds, the eval set's in eval_seconds.
    cache = cache_kind(model)
    train_cache_seconds = eval_cache_seconds = 0.0
    if cache:
        start = synchronized_clock(accelerator)
        train_set = build_cache(cache, accelerator, model, tokenized["train"], collate, hp.batch_size, hp.max_length)
        train_cache_seconds = synchronized_clock(accelerator) - start
        eval_set = build_cache(cache, accelerator, model, tokenized["eval"], collate, hp.batch_size, hp.max_length)
        eval_cache_seconds = synchronized_clock(accelerator) - start - train_cache_seconds
        if cache == "frozen_prefix":
            model = to_suffix_model(model)
        collate = collate_cached
    else:
        train_set, eval_set = tokenized["train"], tokenized["eval"]
    train_lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
    eval_lengths = [len(ids) for ids in tokenized["eval"]["input_ids"]]
    # Batches of similar length: dynamic padding then pads little. Same seed, same order.
    train_loader = DataLoader(
        train_set, batch_sampler=LengthGroupedBatches(train_lengths, hp.batch_size, shuffle=True, seed=cell.seed), collate_fn=collate
    )
    eval_loader = DataLoader(
        eval_set, batch_sampler=LengthGroupedBatches(eval_lengths, hp.batch_size, shuffle=False), collate_fn=collate
    )

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay, fused=cuda or None)
    # Steps counted on the un-sharded loader: the prepared scheduler advances once per
    # process per step, as in accelerate's examples.
    total_steps = len(train_loader) * hp.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)
    if hp.compile:
        model = torch.compile(model)
    model, optimizer, train_loader, eval_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, eval_loader, scheduler
    )
    accuracy = evaluate.load(ACCURACY, keep_in_memory=True)  # in memory: no cache files shared between processes

    memory = PeakMemory(accelerator)
    # The first steps (allocator, thread pools, kernel choice, compilation) are left out of the
    # steady-state figures.
    warmup_steps = min(10, max(1, len(train_loader) // 10))
    history, train_seconds, eval_seconds = [], train_cache_seconds, eval_cache_seconds
    step_flops = warmup_seconds = None
    warmup_samples = 0
    progress = tqdm(
        total=len(train_loader) * hp.epochs,
        desc=f"{cell.checkpoint.rsplit('/', 1)[-1]} | {cell.strategy.name} | seed {cell.seed}",
        disable=not accelerator.is_local_main_process,
        leave=False,
    )
    for epoch in range(1, hp.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=accelerator.device)
        seen = torch.zeros((), device=accelerator.device)
        start = synchronized_clock(accelerator)
        for step, batch in enumerate(train_loader, 1):
            batch.pop("idx")
            if step_flops is None:  # count the FLOPs of one real step, forward and backward
                with FlopCounterMode(display=False) as counter:
                    outputs = model(**batch)
                    accelerator.backward(outputs.loss)
                step_flops = counter.get_total_flops()
                flops_per_sample = step_flops / batch["labels"].shape[0]
            else:
                outputs = model(**batch)
                accelerator.backward(outputs.loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            size = batch["labels"].shape[0]
            loss_sum += outputs.loss.detach().float() * size  # no .item(): no sync per step
            seen += size
            progress.update(1)
            if epoch == 1 and step == warmup_steps:
                warmup_seconds = synchronized_clock(accelerator) - start
                warmup_samples = int(accelerator.reduce(seen.clone(), "sum").item())
        epoch_seconds = synchronized_clock(accelerator) - start
        train_seconds += epoch_seconds
        train_loss = (accelerator.reduce(loss_sum, "sum") / accelerator.reduce(seen, "sum")).item()

        start = synchronized_clock(accelerator)
        evaluation = evaluate_model(accelerator, model, eval_loader, accuracy)
        eval_seconds += synchronized_clock(accelerator) - start
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(train_loss, 6),
                "eval_loss": round(evaluation["eval_loss"], 6),
                "eval_accuracy": round(evaluation["eval_accuracy"], 6),
                "train_seconds": round(epoch_seconds, 3),
            }
        )
        progress.set_postfix(epoch=epoch, train_loss=f"{train_loss:.4f}", acc=f"{evaluation['eval_accuracy']:.4f}")
    progress.close()

    train_examples, eval_examples = len(tokenized["train"]), len(tokenized["eval"])
    if len(evaluation["predictions"]) != eval_examples:  # gather_for_metrics must drop the padding
        raise RuntimeError(f"scored {len(evaluation['predictions'])} evaluation examples, expected {eval_examples}")
    # Steady state: training steps after the warm-up, cache building excluded.
    steady_seconds = train_seconds - train_cache_seconds - warmup_seconds
    steady_samples = train_examples * hp.epochs - warmup_samples
    steady = steady_samples / steady_seconds if steady_samples > 0 and steady_seconds > 0 else None
    achieved = flops_per_sample * steady / 1e12 if steady else None
    peak = peak_tflops * accelerator.num_processes if peak_tflops else None
    result = {
        "train_loss": train_loss,
        "eval_loss": evaluation["eval_loss"],
        "loss_ratio": train_loss / evaluation["eval_loss"],
        "eval_accuracy": evaluation["eval_accuracy"],
        "train_samples_per_s": train_examples * hp.epochs / train_seconds,
        "steady_train_samples_per_s": steady,
        "train_tokens_per_s": sum(train_lengths) * hp.epochs / train_seconds,
        "eval_samples_per_s": eval_examples * hp.epochs / eval_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "cache_seconds": train_cache_seconds + eval_cache_seconds if cache else None,
        "train_flops_per_step": step_flops,
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "mfu": achieved / peak if achieved and peak else None,
        "peak_memory_mb": memory.peak_mb(),
        "memory_measure": memory.measure,
        "history": history,
        "predictions": evaluation["predictions"],
    }
    accelerator.free_memory()  # drop the references prepare() kept, before the next cell
    return result


@torch.no_grad()
def evaluate_model(accelerator: Accelerator, model, eval_loader, accuracy) -> dict:
    model.eval()
    rows = []
    for batch in eval_loader:
        idx, labels = batch.pop("idx"), batch.pop("labels")  # no labels: the loss is computed here, per example
        logits = model(**batch).logits
        losses = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        # gather_for_metrics drops the samples the sampler repeated to even out the last batch
        idx, labels, preds, losses = accelerator.gather_for_metrics((idx, labels, logits.argmax(-1), losses))
        accuracy.add_batch(predictions=preds.cpu(), references=labels.cpu())
        rows.extend(zip(idx.tolist(), labels.tolist(), preds.tolist(), losses.tolist()))
    rows.sort()
    return {
        "eval_loss": sum(r[3] for r in rows) / len(rows),
        "eval_accuracy": accuracy.compute()["accuracy"],
        "predictions": rows,
    }


def synchronized_clock(accelerator: Accelerator) -> float:
    """Wall time after all queued GPU work is done and every process got here."""
    if accelerator.device.type == "cuda":
        torch.cuda.synchronize(accelerator.device)
    accelerator.wait_for_everyone()
    return time.perf_counter()


class PeakMemory:
    """Peak memory of this run: CUDA max allocated, or on CPU the process's peak RSS
    (reset at the start of the run through /proc/self/clear_refs), max over processes."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        if accelerator.device.type == "cuda":
            self.measure = "cuda_max_allocated"
            torch.cuda.reset_peak_memory_stats(accelerator.device)
        else:
            self.measure = "cpu_peak_rss"
            try:  # "5" resets the peak RSS (VmHWM) to the current RSS; Linux only
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.measure = "cpu_peak_rss_process"  # peak since the process started

    def peak_mb(self) -> float:
        if self.measure == "cuda_max_allocated":
            peak = torch.cuda.max_memory_allocated(self.accelerator.device) / 2**20
        else:
            peak = _vm_hwm_mb()
        peaks = self.accelerator.gather(torch.tensor([peak], device=self.accelerator.device))
        return float(peaks.max())


def _vm_hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
