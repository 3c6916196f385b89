"""One device table (bench/devices.py): every GPU is matched by its whole model name as
`torch.cuda.get_device_name` writes it, so its MFU peak and its price come from its own entry."""

import pytest

from bench.decision.cost import price_for
from bench.devices import GPUS, gpu_for

# What torch.cuda.get_device_name returns on each listed GPU (nvidia-smi's product names).
NAMES = {
    "NVIDIA H200": "H200",
    "NVIDIA H100 80GB HBM3": "H100 SXM",
    "NVIDIA H100 PCIe": "H100 PCIe",
    "NVIDIA A100-SXM4-80GB": "A100",
    "NVIDIA A100-SXM4-40GB": "A100",
    "NVIDIA A100-PCIE-40GB": "A100",
    "NVIDIA A100 80GB PCIe": "A100",
    "NVIDIA L40S": "L40S",
    "NVIDIA A10": "A10",
    "NVIDIA L4": "L4",
    "Tesla T4": "T4",
}


@pytest.mark.parametrize("device, entry", NAMES.items())
def test_each_gpu_name_finds_its_own_entry_for_peak_and_price(device, entry):
    gpu = gpu_for(device)
    assert gpu is not None and gpu.name == entry
    assert price_for(device, {}).usd_per_hour == gpu.usd_per_hour


def test_look_alike_names_do_not_borrow_each_others_figures():
    assert gpu_for("NVIDIA L40S").peak_tflops["bf16"] == 362.0  # not the L4's 121: MFU would be 3x off
    assert gpu_for("NVIDIA L4").peak_tflops["bf16"] == 121.0
    assert gpu_for("NVIDIA A10").peak_tflops["bf16"] == 125.0  # not the A100's 312
    assert gpu_for("NVIDIA H100 PCIe").peak_tflops["bf16"] < gpu_for("NVIDIA H100 80GB HBM3").peak_tflops["bf16"]
    assert gpu_for("NVIDIA A10G") is None and gpu_for("NVIDIA GeForce RTX 4090") is None  # unknown: no made-up peak


def test_every_entry_is_reachable_by_a_listed_name():
    assert {gpu.name for gpu in GPUS} == set(NAMES.values())
