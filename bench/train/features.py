"""Compute once what a frozen part of the model would recompute every epoch.

The strategy's plan (`Prepared`, bench/inputs/strategies.py) says what is frozen:
- `features` (head and cnn runs): the frozen backbone's pooled vector (head) or token
  states (cnn) for every example, computed once in eval mode; the head then trains and
  evaluates on those. Same result as
  re-running the backbone (it is frozen and in eval mode either way), a fraction of the work.
- `frozen_prefix` (freeze runs with `cache_frozen: true`): the hidden states entering the
  lowest trainable encoder layer, computed once in eval mode; training then runs only the
  layers above. The trade-off, opt-in for that reason: no dropout inside the frozen layers
  (nor in the embeddings), which a normal run would apply.

The cache stays on the training device in the compute dtype (bf16 under bf16 autocast) as
one contiguous tensor per field, so a batch is a gather (bench/train/batches.py). It is built
without gradients in large batches (the batch size of a pass without gradients does not
change its results), under `torch.no_grad()`: `inference_mode` would turn parameters moved
to the GPU inside it into inference tensors that can never train. Each process computes the
whole cache itself: one pass, no communication.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.inputs.strategies import Prepared
from bench.suite.cells import Cell
from bench.train.batches import ExampleTensors

BUILD_BATCH = 256


@torch.no_grad()
def build_cache(plan, accelerator, examples: ExampleTensors, dtype: torch.dtype) -> ExampleTensors:
    """Run the frozen part of `plan` over every example once (eval mode); returns the rows the
    rest of the model trains on. The model must already be on `accelerator.device`."""
    was_training = plan.model.training
    plan.model.eval()  # frozen parts run without dropout, as in evaluation
    frozen = plan.features if plan.features is not None else FrozenPrefix(plan.model, plan.frozen_prefix)
    width = examples.tensors["input_ids"].shape[1]
    out = None
    for idx, batch in frozen_batches(examples, accelerator.device):
        with accelerator.autocast():
            values = frozen(**batch).to(dtype)
        per_token = values.dim() == 3  # token states (frozen prefix, CNN head) rather than one vector per example
        if out is None:
            shape = (len(examples), width, values.shape[-1]) if per_token else (len(examples), values.shape[1])
            out = {"values": torch.zeros(shape, dtype=dtype, device=accelerator.device), "labels": examples.tensors["labels"]}
        if per_token:
            out["values"][idx, : values.shape[1]] = values
        else:
            out["values"][idx] = values
    plan.model.train(was_training)
    mask = examples.tensors["attention_mask"]
    if plan.features is not None and out["values"].dim() == 3:
        return ExampleTensors({"token_features": out["values"], "attention_mask": mask, "labels": out["labels"]}, examples.lengths)
    if plan.features is not None:
        return ExampleTensors({"features": out["values"], "labels": out["labels"]}, examples.lengths)
    return ExampleTensors(
        {"inputs_embeds": out["values"], "attention_mask": mask, "labels": out["labels"]},
        examples.lengths,
    )


def frozen_batches(examples: ExampleTensors, device):
    """(indices, batch without labels) over every example: longest first and each chunk cut to
    its own longest example, so little padding is computed. The screen's pass
    (bench/launch/screen.py) walks the same chunks, so the pooled vectors it hands the head runs
    are the ones `build_cache` would compute, bit for bit."""
    order = sorted(range(len(examples)), key=lambda i: -examples.lengths[i])
    for start in range(0, len(order), BUILD_BATCH):
        chunk = order[start : start + BUILD_BATCH]
        idx = torch.tensor(chunk, device=device)
        batch = examples.batch(idx, examples.lengths[chunk[0]])
        batch.pop("labels")  # the frozen part takes no labels
        yield idx, batch


class FrozenPrefix:
    """Runs the frozen part of a classifier split at its lowest trainable encoder layer
    (`split` = (name of the layer list, index of that layer)): embeddings + the layers below."""

    def __init__(self, model: nn.Module, split: tuple[str, int]):
        self.base = getattr(model, model.base_model_prefix)
        name, self.first = split
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


def to_suffix_model(model: nn.Module, split: tuple[str, int]) -> nn.Module:
    """The model, from the cached hidden states on: embeddings pass `inputs_embeds` through
    and the frozen layers are dropped from the layer list (they no longer run or count)."""
    name, first = split
    parent, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent)
    base = getattr(model, model.base_model_prefix)
    removed = [(parent, attr, getattr(parent, attr)), (base, "embeddings", base.embeddings)]
    setattr(parent, attr, nn.ModuleList(list(getattr(parent, attr))[first:]))
    base.embeddings = PassThroughEmbeddings()
    if hasattr(base, "embeddings_project"):  # ELECTRA: embedding size -> hidden size, already applied in the cache
        removed.append((base, "embeddings_project", base.embeddings_project))
        base.embeddings_project = nn.Identity()
    model._bench_removed = removed  # a plain list attribute: not a submodule, not in the state dict
    return model


def to_whole_model(model: nn.Module) -> nn.Module:
    """Undo `to_suffix_model`: the frozen layers and embeddings back in place, around the same
    trained layers (the whole model a server runs on text). Other models are returned as they are."""
    for owner, attr, module in reversed(getattr(model, "_bench_removed", [])):
        setattr(owner, attr, module)
    model.__dict__.pop("_bench_removed", None)
    return model


class PassThroughEmbeddings(nn.Module):
    def forward(self, input_ids=None, inputs_embeds=None, *args, **kwargs):  # DistilBERT passes these by position
        return inputs_embeds


COMPUTE_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def device_examples(cell, plan: Prepared, tokenized, tokenizer, accelerator, measure, shared_features):
    """The examples as tensors on the device and the model that trains on them. Where the plan
    has a frozen part, its outputs are computed once (or taken from `shared_features`, where an
    earlier run of the suite computed the same thing) and the model starts after it; the cost
    of computing them is counted in the split's own clock (train_seconds, validation_seconds,
    test_seconds). Returns (model, sets, whether they are cached outputs, seconds of reused
    train and validation caches)."""
    device, max_length = accelerator.device, cell.hparams.max_length
    plan.model.to(device)  # before any pass without gradients: the parameters stay trainable tensors
    set_problem_type(plan.model)
    splits = {"train": "train", "validation": "validation", "test": "eval"}
    sets = {
        name: ExampleTensors.from_tokenized(tokenized[split], tokenizer.pad_token_id, max_length, device)
        for name, split in splits.items()
        if split in tokenized
    }
    if plan.features is None and plan.frozen_prefix is None:
        return plan.model, sets, False, 0.0
    dtype = COMPUTE_DTYPES.get(accelerator.mixed_precision, torch.float32)
    reused = 0.0
    for name in list(sets):
        key = feature_key(cell, plan, name, len(sets[name]))
        if shared_features is not None and key in shared_features:
            sets[name], seconds = shared_features[key]
            reused += seconds if name != "test" else 0.0
            continue
        with measure.timed(f"{name}_cache") as interval:
            sets[name] = build_cache(plan, accelerator, sets[name], dtype)
        if shared_features is not None:
            shared_features[key] = (sets[name], interval.elapsed)
    model = to_suffix_model(plan.model, plan.frozen_prefix) if plan.frozen_prefix else plan.model
    return model, sets, True, reused


def feature_key(cell: Cell, plan: Prepared, split: str, examples: int) -> tuple:
    """What a cached frozen output depends on: the checkpoint, the examples, their length,
    the compute dtype and what the frozen part computes. Not the seed, the learning rate or
    anything else that only the trained part sees."""
    return (cell.checkpoint, cell.dataset.model_dump_json(exclude={"train_size"}), split, examples,
            cell.hparams.max_length, cell.mixed_precision, plan.cache_key)


def set_problem_type(model: torch.nn.Module) -> None:
    """HF classifiers pick their loss on the first call and write it into the config; set it
    up front (single-label cross-entropy) so a compiled forward has no side effect to trace."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "problem_type", "unset") is None and getattr(config, "num_labels", 0) > 1:
            config.problem_type = "single_label_classification"

