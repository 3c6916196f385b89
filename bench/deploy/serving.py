"""What a trained model costs to serve: latency at batch 1 and throughput at larger batches,
measured as a server would call it (texts tokenized per request, truncated at the run's max
length, padded to the batch's longest), in eval mode on the run's device, in the run's compute
dtype, with its compile setting (a compiled run pads to max_length: one shape per batch size,
as a CUDA-graph server does).

The method follows optimum-benchmark's: warm-up calls first, then at least `min_calls` calls
and `min_seconds` of them, each clocked alone (the GPU synchronised before the clock is read),
percentiles from numpy. Tokenization is timed apart from the model. A peft model that can be
merged is served merged (`merge_and_unload`, on a copy: what a deployment runs); its figures as
trained are measured too, and the two forms' predictions are compared on the same requests.

`measure_serving` is the one entry point (bench/train/cell.py calls it after every ok run); it returns
the row's serving columns (bench/results/columns.py documents them).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import math
import time

import numpy as np
import torch

from bench.results.columns import COLUMNS
from bench.train.compiled import compile_forward
from bench.train.hardware import device_name
from bench.train.measure import process_memory_mb, reset_peak_rss


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


@dataclasses.dataclass(frozen=True)
class Requests:
    """What a server receives and how it turns it into tensors: the requests (texts, or (text,
    pair) tuples), the run's tokenizer and max length, the padding (True: to the batch's longest;
    "max_length": one static shape per batch size, for a compiled model) and the device the
    model runs on."""
    texts: list
    tokenizer: object
    max_length: int
    device: torch.device
    padding: bool | str = True

    def encode(self, batch: list) -> dict:
        """Some requests as one batch of tensors, as the server's tokenizer makes them."""
        texts = [request if isinstance(request, str) else request[0] for request in batch]
        pairs = None if all(isinstance(r, str) or len(r) == 1 for r in batch) else [r[1] for r in batch]
        return self.tokenizer(texts, pairs, truncation=True, max_length=self.max_length, padding=self.padding,
                              return_tensors="pt")


def batch1_latency(model, requests: Requests, min_calls: int = 100, min_seconds: float = 10.0,
                   warmup: int = 10) -> Latency:
    """One request at a time, cycling through the requests, until both minimums are met."""
    model.eval()
    texts, device = requests.texts, requests.device
    for text in texts[:max(warmup, 1)]:
        _forward(model, requests.encode([text]), device)
    _sync(device)
    model_ms, tokenize_ms, tokens = [], [], []
    start = time.perf_counter()
    while len(model_ms) < min_calls or time.perf_counter() - start < min_seconds:
        text = texts[len(model_ms) % len(texts)]
        t0 = time.perf_counter()
        encoded = requests.encode([text])
        t1 = time.perf_counter()
        _forward(model, encoded, device)
        _sync(device)
        t2 = time.perf_counter()
        tokenize_ms.append((t1 - t0) * 1e3)
        model_ms.append((t2 - t1) * 1e3)
        tokens.append(model_input_tokens(model, encoded))
    p50, p95, p99 = np.percentile(model_ms, [50, 95, 99])
    return Latency(float(p50), float(p95), float(p99), len(model_ms), float(np.median(tokenize_ms)), int(np.median(tokens)))


def throughput(model, requests: Requests, batch_size: int, min_calls: int = 10, min_seconds: float = 10.0) -> Throughput:
    """Samples per second of the model alone at `batch_size`, over batches of consecutive requests
    (tokenized beforehand: a server batches what its tokenizer workers already encoded). With
    fewer requests than `batch_size`, they are repeated to fill the batch."""
    model.eval()
    texts, device = list(requests.texts), requests.device
    texts = texts * math.ceil(batch_size / len(texts)) if len(texts) < batch_size else texts
    batches = [requests.encode(texts[i:i + batch_size]) for i in range(0, len(texts) - batch_size + 1, batch_size)]
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


def merged_adapter(model):
    """The deployable copy of a peft model: adapters merged into the base weights. Other
    models are returned as they are."""
    if not hasattr(model, "merge_and_unload"):
        return model
    return copy.deepcopy(model).merge_and_unload()


# ----------------------------------------------------------------------------- one run's figures


@dataclasses.dataclass(frozen=True)
class Form:
    """One deployable form of a trained model (as trained, or merged), measured."""
    latency: Latency
    rates: list  # Throughput per batch size
    memory_mb: float  # its weights + the most memory serving took above them

    @property
    def best(self) -> Throughput:
        return max(self.rates, key=lambda rate: rate.samples_per_s)


# The figures that depend only on what is served (architecture and size, form, dtype, device,
# lengths, batch sizes): measured once per served computation, carried by every run that serves
# the same one. The rest (what must be stored, merged-vs-unmerged agreement) is the run's own.
TIMED = tuple(column.name for column in COLUMNS if column.timed)


def served_computation(model, max_length: int, device: torch.device, settings, dtype: str, compile_mode: str | None) -> str:
    """A hash of what serving this model computes and how it is timed: the model's class and
    every parameter's name and shape (architecture and size; an adapter's own tensors too, as it
    is also timed unmerged), whether it is served merged, the compute dtype, the device as the
    row's `device` names it (a CPU timing holds for that CPU model and thread count only), the
    length and the suite's serving settings. Learning rates, seeds and weights do not enter."""
    served = {
        "model": type(model).__name__,
        "parameters": [(name, list(p.shape)) for name, p in model.named_parameters()],
        "merged": hasattr(model, "merge_and_unload"),
        "dtype": dtype, "device": device_name(device, torch.get_num_threads()), "max_length": max_length, "compile": compile_mode,
        "settings": settings.model_dump(exclude={"measure"}),
    }
    return hashlib.sha256(json.dumps(served, sort_keys=True).encode()).hexdigest()[:12]


def measure_serving(model, requests: Requests, settings, autocast=None, compile_mode: str | None = None,
                    pretrained_changed: bool = True, carried: dict | None = None) -> dict:
    """The serving columns of a run's row. `requests`: what a server receives (its padding is
    set here from `compile_mode`); `settings`: the suite's ServingSpec; `autocast`: the run's
    autocast context (its compute dtype); `compile_mode`: the run's torch.compile mode (its
    forward is already compiled; a merged copy is compiled the same way, and both are fed one
    static shape per batch size); `pretrained_changed`: whether any pretrained weight trained
    (then the whole model must be stored to serve it); `carried`: the timed figures (TIMED) of
    an earlier run that served the same computation, used instead of timing this model again."""
    start = time.perf_counter()
    requests = dataclasses.replace(requests, padding="max_length" if compile_mode else True)
    deployed = merged_adapter(model)
    is_merged = deployed is not model
    if is_merged and compile_mode and carried is None:
        compile_forward(deployed, compile_mode)
    with autocast or contextlib.nullcontext():
        if carried is None:
            columns = timed_figures(model, deployed, requests, settings)
        else:
            columns = {name: carried[name] for name in TIMED if carried.get(name) not in (None, "")}
        columns["serving_stored_mb"] = stored_mb(deployed, whole=pretrained_changed or is_merged)
        if is_merged:
            columns["unmerged_stored_mb"] = stored_mb(model, whole=False)
            columns["merged_agreement"] = agreement(model, deployed, requests, settings.batch_sizes[0])
    del deployed
    columns["serving_seconds"] = time.perf_counter() - start
    return columns


def timed_figures(model, deployed, requests: Requests, settings) -> dict:
    """Latency and throughput of the deployed form (and, for a merged adapter, of the adapter
    model as trained)."""
    form = measure_form(deployed, requests, settings)
    columns = form_columns(form, "merged" if deployed is not model else "as trained")
    columns["serving_input_tokens"] = form.latency.input_tokens
    if deployed is not model:
        trained = measure_form(model, requests, settings)
        columns.update(unmerged_latency_p50_ms=trained.latency.p50_ms, unmerged_samples_per_s=trained.best.samples_per_s)
    return columns


def measure_form(model, requests: Requests, settings) -> Form:
    """Batch-1 latency and throughput at every listed batch size, and the memory they took."""
    with peak_memory_above_baseline(requests.device) as peak:
        latency = batch1_latency(model, requests, settings.min_calls, settings.min_seconds, settings.warmup_calls)
        rates = [throughput(model, requests, size, settings.throughput_min_calls, settings.min_seconds)
                 for size in settings.batch_sizes]
    return Form(latency, rates, weights_mb(model) + peak())


def form_columns(form: Form, name: str) -> dict:
    best = form.best
    return {
        "serving_form": name,
        "serving_latency_p50_ms": form.latency.p50_ms,
        "serving_latency_p95_ms": form.latency.p95_ms,
        "serving_latency_p99_ms": form.latency.p99_ms,
        "serving_latency_calls": form.latency.calls,
        "serving_tokenize_ms": form.latency.tokenize_ms,
        "serving_samples_per_s": best.samples_per_s,
        "serving_batch_size": best.batch_size,
        "serving_throughput": json.dumps({str(rate.batch_size): round(rate.samples_per_s, 2) for rate in form.rates}),
        "serving_memory_mb": form.memory_mb,
    }


def agreement(model, deployed, requests: Requests, batch_size: int) -> float:
    """The fraction of requests on which both models predict the same class."""
    same, texts = 0, requests.texts
    for i in range(0, len(texts), batch_size):
        encoded = requests.encode(texts[i:i + batch_size])
        same += int((_forward(model, encoded, requests.device).argmax(-1)
                     == _forward(deployed, encoded, requests.device).argmax(-1)).sum())
    return same / len(texts)


def weights_mb(model) -> float:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def stored_mb(model, whole: bool) -> float:
    """MB in fp32 of what serving `model` needs beside the public checkpoint: every parameter
    when a pretrained weight changed (full and freeze runs, merged adapters), else only the
    trained ones (an adapter and its head, a head on a frozen backbone)."""
    return sum(p.numel() for p in model.parameters() if whole or p.requires_grad) * 4 / 2**20


@contextlib.contextmanager
def peak_memory_above_baseline(device: torch.device):
    """Yields a function giving the most memory (MB) taken above what was in use when the block
    began: CUDA allocated bytes, or on CPU the process's resident set (its peak reset through
    /proc/self/clear_refs; memory freed by training and reused reads as nothing new, so on CPU
    the figure is a lower bound)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield lambda: (torch.cuda.max_memory_allocated(device) - base) / 2**20
        return
    reset_peak_rss()
    base = process_memory_mb("VmRSS")
    yield lambda: max(0.0, process_memory_mb("VmHWM") - base)
