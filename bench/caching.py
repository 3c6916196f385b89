"""Compute once what a frozen part of the model would recompute every epoch.

- `head` runs: the frozen backbone's pooled vector for every example, computed once in eval
  mode; the head then trains and evaluates on those vectors. Same result as re-running the
  backbone (it is frozen and in eval mode either way), a fraction of the work.
- `freeze` runs with `cache_frozen: true`: the hidden states entering the lowest trainable
  encoder layer, computed once in eval mode; training then runs only the layers above.
  The trade-off, opt-in for that reason: no dropout inside the frozen layers (nor in the
  embeddings), which a normal run would apply.

With N processes each computes its share of the examples and `gather_for_metrics` hands
every process the whole cache, in example order.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bench.strategies import PooledHeadClassifier


class CachedExamples(Dataset):
    """Per-example tensors (one row each) with the label and the example's idx."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors["labels"])

    def __getitem__(self, i):
        return {key: value[i] for key, value in self.tensors.items()}


def collate_cached(items: list[dict]) -> dict:
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    if "attention_mask" in batch:  # cut the padding no example in this batch needs
        longest = int(batch["attention_mask"].sum(1).max())
        batch["attention_mask"] = batch["attention_mask"][:, :longest]
        batch["inputs_embeds"] = batch["inputs_embeds"][:, :longest]
    return batch


def cache_kind(model: nn.Module) -> str | None:
    if isinstance(model, PooledHeadClassifier):
        return "head"
    if getattr(model, "bench_cache_frozen", False):
        return "frozen_prefix"
    return None


@torch.inference_mode()
def build_cache(kind: str, accelerator, model: nn.Module, dataset, collate, batch_size: int, max_length: int) -> CachedExamples:
    """Run the frozen part over every example of `dataset` once (eval mode)."""
    loader = accelerator.prepare_data_loader(DataLoader(dataset, batch_size=batch_size, collate_fn=collate))
    model.to(accelerator.device).eval()  # frozen parts run without dropout, as in evaluation
    if kind == "frozen_prefix":
        prefix = FrozenPrefix(model)
    parts: dict[str, list] = {}
    for batch in loader:
        idx, labels = batch.pop("idx"), batch.pop("labels")
        with accelerator.autocast():
            if kind == "head":
                rows = {"features": model.pool(**batch).float()}
            else:
                hidden = prefix(**batch).float()
                pad = max_length - hidden.shape[1]  # fixed width, so processes can gather
                rows = {
                    "inputs_embeds": nn.functional.pad(hidden, (0, 0, 0, pad)),
                    "attention_mask": nn.functional.pad(batch["attention_mask"], (0, pad)),
                }
        gathered = accelerator.gather_for_metrics({"idx": idx, "labels": labels, **rows})
        for key, value in gathered.items():
            parts.setdefault(key, []).append(value.cpu())
    tensors = {key: torch.cat(values) for key, values in parts.items()}
    order = torch.argsort(tensors["idx"])
    return CachedExamples({key: value[order] for key, value in tensors.items()})


class FrozenPrefix:
    """Splits a classifier at its lowest trainable encoder layer: `__call__` runs the frozen
    part (embeddings + the layers below), and `to_suffix` turns the model into one that
    starts from those hidden states (`inputs_embeds`), the frozen modules bypassed."""

    def __init__(self, model: nn.Module):
        self.base = getattr(model, model.base_model_prefix)
        name, self.first = model.bench_cache_frozen
        parent, _, self.attr = name.rpartition(".")
        self.parent = model.get_submodule(parent)

    def __call__(self, input_ids, attention_mask, token_type_ids=None):
        self.base.eval()
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        full = getattr(self.parent, self.attr)
        setattr(self.parent, self.attr, nn.ModuleList(list(full)[: self.first]))  # the encoder runs what the list holds
        try:
            return self.base(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        finally:
            setattr(self.parent, self.attr, full)


def to_suffix_model(model: nn.Module) -> nn.Module:
    """The model, from the cached hidden states on: embeddings pass `inputs_embeds` through
    and the frozen layers are dropped from the layer list (they no longer run or count)."""
    name, first = model.bench_cache_frozen
    parent, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent)
    setattr(parent, attr, nn.ModuleList(list(getattr(parent, attr))[first:]))
    getattr(model, model.base_model_prefix).embeddings = PassThroughEmbeddings()
    return model


class PassThroughEmbeddings(nn.Module):
    def forward(self, input_ids=None, inputs_embeds=None, *args, **kwargs):  # DistilBERT passes these by position
        return inputs_embeds
