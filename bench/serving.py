"""What a trained model costs to serve: latency at batch 1 and throughput at larger batches,
measured as a server would call it (texts tokenized per request, truncated at the run's max
length, padded to the batch's longest), in eval mode on the run's device.

The method follows optimum-benchmark's: warm-up calls first, then at least `min_calls` calls
and `min_seconds` of them, each clocked alone (the GPU synchronised before the clock is read),
percentiles from numpy. Tokenization is timed apart from the model. `merged` turns a peft
model into the plain model a server would deploy (`merge_and_unload`), on a copy.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    calls: int
    tokenize_ms: float  # per request, median
    input_tokens: int  # median tokens the model sees per request, virtual tokens of prompt methods included


@dataclasses.dataclass(frozen=True)
class Throughput:
    batch_size: int
    samples_per_s: float
    calls: int


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model, encoded: dict, device: torch.device):
    with torch.no_grad():
        return model(**{k: v.to(device, non_blocking=True) for k, v in encoded.items()}).logits


def model_input_tokens(model, encoded: dict) -> int:
    """Tokens the model computes over: the request's, plus a prompt method's virtual tokens."""
    config = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
    virtual = getattr(config, "num_virtual_tokens", None) or 0
    return int(encoded["attention_mask"].sum(dim=1).median().item()) + int(virtual)


def batch1_latency(model, tokenizer, texts: list[str], max_length: int, device: torch.device,
                   min_calls: int = 100, min_seconds: float = 10.0, warmup: int = 10) -> Latency:
    """One request at a time, cycling through `texts`, until both minimums are met."""
    model.eval()
    for text in texts[:warmup]:
        _forward(model, tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt"), device)
    _sync(device)
    model_ms, tokenize_ms, tokens = [], [], []
    start = time.perf_counter()
    while len(model_ms) < min_calls or time.perf_counter() - start < min_seconds:
        text = texts[len(model_ms) % len(texts)]
        t0 = time.perf_counter()
        encoded = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
        t1 = time.perf_counter()
        _forward(model, encoded, device)
        _sync(device)
        t2 = time.perf_counter()
        tokenize_ms.append((t1 - t0) * 1e3)
        model_ms.append((t2 - t1) * 1e3)
        tokens.append(model_input_tokens(model, encoded))
    p50, p95, p99 = np.percentile(model_ms, [50, 95, 99])
    return Latency(float(p50), float(p95), float(p99), len(model_ms), float(np.median(tokenize_ms)), int(np.median(tokens)))


def throughput(model, tokenizer, texts: list[str], max_length: int, device: torch.device, batch_size: int,
               min_calls: int = 10, min_seconds: float = 10.0) -> Throughput:
    """Samples per second of the model alone at `batch_size`, over batches of consecutive texts
    (tokenized beforehand: a server batches what its tokenizer workers already encoded)."""
    model.eval()
    batches = [tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
               for i in range(0, max(len(texts) - batch_size + 1, 1), batch_size)]
    _forward(model, batches[0], device)  # warm-up: allocator, kernels
    _sync(device)
    samples, calls = 0, 0
    start = time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        batch = batches[calls % len(batches)]
        _forward(model, batch, device)
        samples += len(batch["input_ids"])
        calls += 1
    _sync(device)
    return Throughput(batch_size, samples / (time.perf_counter() - start), calls)


def merged(model):
    """The deployable copy of a peft model: adapters merged into the base weights. Other
    models are returned as they are."""
    if not hasattr(model, "merge_and_unload"):
        return model
    return copy.deepcopy(model).merge_and_unload()
