"""The devices we know, in one table: each GPU's dense peak TFLOP/s per matmul dtype (for MFU,
bench/train/hardware.py) and its assumed price per hour (for cost, bench/decision/cost.py).

A GPU is matched by its whole model name in what `torch.cuda.get_device_name` returns: an
"NVIDIA L40S" is not an L4, an "NVIDIA A10" is not an A100, and an H100 PCIe card (lower
clocks and power) is not the SXM part. Entries are tried in order, the more specific first.
Peaks are the vendors' dense (no sparsity) figures; "tf32" is what fp32 matmuls get when TF32
is allowed (bench/launch/sequential.py allows it on CUDA). Prices are rounded on-demand list
prices of single-GPU instances on GPU clouds in 2025-2026 (hyperscalers often charge 2-3x):
assumptions, labelled as such in the report; `--price` gives your own.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class GPU:
    name: str  # as the report names it
    pattern: str  # a regular expression matched against the device name, whole words
    peak_tflops: dict  # matmul dtype -> dense TFLOP/s
    usd_per_hour: float  # assumed price of one GPU-hour

    def matches(self, device_name: str) -> bool:
        return re.search(self.pattern, device_name, re.IGNORECASE) is not None


HOPPER = {"bf16": 989.0, "fp16": 989.0, "tf32": 494.5, "fp32": 67.0}  # H100 SXM5 and H200 share the compute die
GPUS = (
    GPU("H200", r"\bH200\b", HOPPER, 3.50),
    GPU("H100 PCIe", r"\bH100\b.*\bPCIe\b", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0}, 2.49),
    GPU("H100 SXM", r"\bH100\b", HOPPER, 2.99),  # "NVIDIA H100 80GB HBM3": the SXM5 part
    GPU("A100", r"\bA100\b", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}, 1.79),
    GPU("L40S", r"\bL40S\b", {"bf16": 362.0, "fp16": 362.0, "tf32": 183.0, "fp32": 91.6}, 1.00),
    GPU("A10", r"\bA10\b", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}, 0.75),
    GPU("L4", r"\bL4\b", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}, 0.80),
    GPU("T4", r"\bT4\b", {"fp16": 65.0, "fp32": 8.1}, 0.35),  # no bf16 tensor cores
)
CPU_USD_PER_THREAD_HOUR = 0.045  # a vCPU of a general-purpose cloud VM, times the run's threads


def gpu_for(device_name: str) -> GPU | None:
    """The table's entry for a device name (`torch.cuda.get_device_name`, the report's `device`), or None."""
    return next((gpu for gpu in GPUS if gpu.matches(device_name)), None)
