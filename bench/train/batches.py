"""Examples as contiguous tensors on the device, and batches cut from them by index.

A run's examples (token ids, or the cached outputs of a frozen part) are stacked once into
fixed-width tensors on the training device. The data loader then only hands out example
indices (`IndexBatches`); a batch is a gather from those tensors, cut to the batch's width.
No per-example collation, no host-to-device copy of tokens per step.

Static shapes for CUDA graphs: with `buckets`, a batch's width is the smallest bucket that
holds its longest example, and a short last batch is padded to the full batch size with
rows whose label is -100 (ignored by the loss; their predictions are cut off). Padding
tokens are masked by the attention mask, so the numbers computed for real tokens are the
same as with the tightest padding.
"""

from __future__ import annotations

import itertools

import torch
from torch.nn import functional as F

IGNORE_INDEX = -100  # what cross-entropy (torch, HF models) leaves out of the loss
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "inputs_embeds", "token_features")
TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def length_buckets(max_length: int, count: int = 8, multiple: int = 8) -> list[int]:
    """`count` widths evenly spaced up to max_length, rounded up to a multiple of 8 (tensor
    cores): at most eight CUDA graphs per run, at most an eighth of max_length padded."""
    widths = {min(max_length, -(-(max_length * (i + 1) // count) // multiple) * multiple) for i in range(count)}
    return sorted(w for w in widths if w > 0)


class ExampleTensors:
    """Per-example rows of equal width, plus each example's real length (on the host)."""

    def __init__(self, tensors: dict[str, torch.Tensor], lengths: list[int]):
        self.tensors = tensors
        self.lengths = lengths
        self.has_sequence = any(k in tensors for k in SEQUENCE_KEYS)

    @classmethod
    def from_tokenized(cls, split, pad_token_id: int, max_length: int, device) -> ExampleTensors:
        """Token ids padded to max_length (right side, attention mask 0 on padding)."""
        lengths = [len(ids) for ids in split["input_ids"]]
        real = torch.arange(max_length) < torch.tensor(lengths)[:, None]  # where each row's tokens go
        tensors = {}
        for key in TOKEN_KEYS:
            if key not in split.column_names:
                continue
            fill = pad_token_id if key == "input_ids" else 0
            rows = torch.full((len(lengths), max_length), fill, dtype=torch.long)
            rows[real] = torch.tensor(list(itertools.chain.from_iterable(split[key])), dtype=torch.long)
            tensors[key] = rows
        tensors["labels"] = torch.tensor(split["labels"], dtype=torch.long)
        return cls({k: v.to(device) for k, v in tensors.items()}, lengths)

    def __len__(self) -> int:
        return len(self.lengths)

    def batch(self, idx: torch.Tensor, width: int | None, rows: int | None = None) -> dict[str, torch.Tensor]:
        """The examples `idx`, cut to `width` tokens; with `rows`, padded to that many rows."""
        real = idx.shape[0]
        if rows is not None and real < rows:
            idx = F.pad(idx, (0, rows - real))  # repeats example 0; its label is masked below
        batch = {key: value[idx, :width] if key in SEQUENCE_KEYS else value[idx] for key, value in self.tensors.items()}
        if idx.shape[0] > real:
            batch["labels"][real:] = IGNORE_INDEX
        return batch


class IndexBatches:
    """`collate_fn` for a loader over example indices: the indices as a tensor, the width the
    batch is cut to and its count of real tokens (ints, which accelerate passes through
    untouched: the step loop needs them on the host)."""

    def __init__(self, lengths: list[int], buckets: list[int] | None, multiple: int = 1):
        self.lengths, self.buckets, self.multiple = lengths, buckets, multiple

    def width(self, indices) -> int:
        longest = max(self.lengths[i] for i in indices)
        if self.buckets:
            return next(b for b in self.buckets if b >= longest)
        return -(-longest // self.multiple) * self.multiple

    def __call__(self, indices: list[int]) -> dict:
        tokens = sum(self.lengths[i] for i in indices)
        return {"idx": torch.tensor(indices, dtype=torch.long), "width": self.width(indices), "tokens": tokens}

    def widths(self) -> list[int]:
        """Every width a batch of these examples can get (a batch's width is its longest
        example's bucket): the shapes to compile before the clocks start."""
        return sorted({self.width([i]) for i in range(len(self.lengths))})
