"""What a run cost: device-seconds (training wall time x processes) and money, from a price
per device-hour. The default prices are assumptions, labelled as such in the report; pass
your own (`--price H100=2.10`, or one price for every device) to get your numbers.
"""

from __future__ import annotations

import dataclasses
import re

from bench.devices import CPU_USD_PER_THREAD_HOUR, GPUS, gpu_for
from bench.errors import BenchError

# The assumed prices, as the report's Cost section lists them (bench/devices.py holds them).
DEFAULT_PRICES = {**{gpu.name: gpu.usd_per_hour for gpu in GPUS}, "CPU (per thread)": CPU_USD_PER_THREAD_HOUR}


@dataclasses.dataclass(frozen=True)
class Price:
    usd_per_hour: float  # per process (one GPU, or one CPU process with all its threads)
    source: str  # how it was chosen, for the report's assumptions


def parse_prices(specs: list[str] | None) -> dict:
    """`--price` values: `NAME=USD` (NAME matched in the device name, case-insensitive; CPU
    prices are per thread) or a bare `USD` for every device."""
    prices = {}
    for spec in specs or []:
        name, _, value = spec.rpartition("=")
        try:
            usd = float(value)
        except ValueError:
            usd = float("nan")
        if not usd >= 0 or usd == float("inf"):
            raise BenchError(f"--price {spec!r}: give NAME=USD_PER_HOUR (e.g. H100=2.5) or USD_PER_HOUR, a number >= 0")
        prices[name.strip() or "*"] = usd
    return prices


def price_for(device: str, user_prices: dict) -> Price:
    """The price per process-hour of `device` (the report's `device` column)."""
    threads = _cpu_threads(device)
    for name, usd in user_prices.items():
        if name == "*" or name.lower() in device.lower():
            if threads is not None:
                return Price(usd * threads, f"--price {name}={usd:g} per thread x {threads} threads")
            return Price(usd, f"--price {name}={usd:g}")
    if threads is not None:
        usd = CPU_USD_PER_THREAD_HOUR
        return Price(usd * threads, f"assumed ${usd:g} per CPU thread-hour x {threads} threads")
    gpu = gpu_for(device)
    if gpu is not None:
        return Price(gpu.usd_per_hour, f"assumed ${gpu.usd_per_hour:g} per {gpu.name}-hour")
    raise BenchError(
        f"no price for device '{device}'; pass --price NAME=USD_PER_HOUR (NAME a part of the device name) or --price USD_PER_HOUR"
    )


def _cpu_threads(device: str) -> int | None:
    """Threads of a CPU run (`cpu x86_64 x2 threads`), None for a GPU."""
    match = re.match(r"cpu\b.*?x(\d+) threads", device, re.IGNORECASE)
    return int(match.group(1)) if match else None


def device_hours(train_seconds: float, processes: int) -> float:
    return train_seconds * processes / 3600


def run_cost(train_seconds: float, processes: int, price: Price) -> float:
    """USD for a run's training: device-hours x price per device-hour."""
    return device_hours(train_seconds, processes) * price.usd_per_hour


# ----------------------------------------------------------------------------- serving


def serving_cost_per_million(samples_per_s: float, price: Price) -> float:
    """USD per million predictions for one device serving at `samples_per_s` (at batch 1,
    latency-bound; at a large batch, throughput-bound)."""
    if not samples_per_s > 0:
        raise ValueError(f"serving throughput must be positive, got {samples_per_s}")
    return price.usd_per_hour / (samples_per_s * 3600) * 1e6


def total_cost(training_usd: float, serving_usd_per_million: float, predictions_per_month: float, months: float) -> float:
    """Training (with its tuning, where the suite swept) plus serving `predictions_per_month`
    for `months`."""
    return training_usd + serving_usd_per_million * predictions_per_month * months / 1e6


def break_even_traffic(cheap_to_train: tuple[float, float], cheap_to_serve: tuple[float, float], months: float) -> float | None:
    """Predictions a month above which the second (training USD, serving USD per million)
    costs less in all than the first over `months`; None when it never does (it does not serve
    cheaper) and 0 when it always does."""
    (train_a, serve_a), (train_b, serve_b) = cheap_to_train, cheap_to_serve
    if serve_b >= serve_a:
        return 0.0 if train_b <= train_a and serve_b == serve_a else None
    return max(0.0, (train_b - train_a) / ((serve_a - serve_b) * months / 1e6))
