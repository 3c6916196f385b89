"""Per-example validation outcomes in a row's history: which validation examples an epoch got
right, packed to bits (base64 of numpy.packbits, examples in index order), so that a halving
rung can compare two points on the same examples (a paired test) from the rows alone, whichever
process, worker or earlier launch trained them. 500 examples take 84 characters per epoch."""

from __future__ import annotations

import base64

import numpy as np


def pack_outcomes(correct) -> str:
    """`correct`: one bool per validation example, in index order."""
    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def unpack_outcomes(text: str, examples: int) -> np.ndarray:
    """The bools `pack_outcomes` packed, `examples` of them."""
    bits = np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))
    if len(bits) < examples or len(bits) - examples >= 8:
        raise ValueError(f"packed outcomes hold {len(bits)} bits, not the outcomes of {examples} examples")
    return bits[:examples].astype(bool)


def majority_rate(labels) -> float:
    """The share of the most frequent label: the accuracy of a model that learned nothing."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return float(counts.max() / counts.sum())
