"""The machine: peak compute of the device for MFU, and setup (precision, CPU threads, name).

GPUs: the vendor's dense (no sparsity) peak for the dtype the matmuls run in (bench/devices.py). CPUs have no
table worth trusting (cores, clocks and vector units vary), so the peak is measured: the
best of a few large matmuls with this process's threads, at the start of the suite.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

from bench.devices import gpu_for
from bench.errors import BenchError


def matmul_dtype(mixed_precision: str, device: torch.device) -> str:
    if mixed_precision in ("bf16", "fp16"):
        return mixed_precision
    return "tf32" if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32 else "fp32"


def peak_tflops(device: torch.device, dtype: str) -> tuple[float | None, str]:
    """(peak TFLOP/s of this process's device, where the figure comes from)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        gpu = gpu_for(name)
        if gpu is not None and dtype in gpu.peak_tflops:
            return gpu.peak_tflops[dtype], f"table:{gpu.name}:{dtype}"
        return None, f"no {dtype} peak known for GPU {name!r} (bench/devices.py)"
    if device.type == "cpu":
        return measured_cpu_tflops(dtype), f"measured:cpu matmul {dtype} x{torch.get_num_threads()} threads"
    return None, f"no peak for {device.type}"


def measured_cpu_tflops(dtype: str, size: int = 1024, seconds: float = 1.0) -> float:
    """Best sustained rate of size x size matmuls in this dtype, over about `seconds`."""
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)
    a = torch.randn(size, size).to(torch_dtype)
    b = torch.randn(size, size).to(torch_dtype)
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        elapsed = time.perf_counter() - start
        best = max(best, 4 * 2 * size**3 / elapsed / 1e12)
    return best


# ----------------------------------------------------------------------------- machine setup


def resolve_mixed_precision(setting: str) -> str:
    """`auto`: bf16 where the device computes it natively (recent GPUs; CPUs with AVX512-BF16
    or AMX), fp16 on older GPUs, otherwise fp32 ("no")."""

    if setting == "fp16" and not _gpu_in_use():  # accelerate refuses it at the first step, after loading everything
        raise BenchError("mixed_precision fp16 needs a GPU, and this run is on the CPU; use bf16, no, or auto")
    if setting != "auto":
        return setting
    if _gpu_in_use():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def device_kind() -> str:
    """cuda or cpu: what this machine's runs train on (ACCELERATE_USE_CPU=1 keeps them on the
    CPU), the device kind that enters a run_id. A launch's Accelerator agrees with it."""
    return "cuda" if _gpu_in_use() else "cpu"


def _gpu_in_use() -> bool:
    return os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes") and torch.cuda.is_available()


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def set_cpu_threads(accelerator) -> int:
    """On CPU share the cores among this machine's processes. accelerate's launcher sets
    OMP_NUM_THREADS=1, and oversubscription (2 processes x 2 threads on 2 cores) made a
    step 100x slower here."""

    if accelerator.device.type != "cpu":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    torch.set_num_threads(max(1, cores // local))
    return torch.get_num_threads()


def device_name(device: torch.device, threads: int) -> str:
    """The row's `device`: the GPU's model, or the CPU's model and the threads the run used
    (cost is priced per thread: bench/decision/cost.py reads them back from this name)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu {cpu_model()} x{threads} threads"


def cpu_model(cpuinfo: str | None = None) -> str:
    """The processor's model name (/proc/cpuinfo), else the architecture: two CPUs both named
    'x86_64' can differ twofold in speed. A virtual machine may hide the model number ('AMD
    EPYC' on two generations, one with native bf16 and one without): then the family and model
    numbers say which."""
    fields = {}
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        text = ""
    for line in text.splitlines():  # the first processor's fields
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), " ".join(value.split()))
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    if not re.search(r"\d", name) and "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name
