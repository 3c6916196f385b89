"""Speed regression checks: one training step per strategy kind, as the runner takes it.

Not part of the unit tests (pyproject's addopts ignores this folder). Save a baseline on a
quiet machine, then compare against it (README, "Speed regressions"):

    python -m pytest tests/benchmarks -p no:cacheprovider --benchmark-only \
        --benchmark-storage=tests/benchmarks/baselines --benchmark-save=baseline
    python -m pytest tests/benchmarks -p no:cacheprovider --benchmark-only \
        --benchmark-storage=tests/benchmarks/baselines --benchmark-compare --benchmark-compare-fail=min:25%

The model is a small random BERT (4 layers, hidden 128) sized so a step takes milliseconds:
`min` over many rounds of such a step is stable on a shared machine, `mean` is not.
"""

import pytest
import torch
from conftest import build_checkpoint

from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import build_model
from bench.train.features import FrozenPrefix, to_suffix_model

BATCH, LENGTH = 16, 64


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory):
    return build_checkpoint(
        tmp_path_factory.mktemp("bench-bert"), "bert",
        hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
    )


@pytest.fixture(scope="module", autouse=True)
def fixed_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: less sensitive to whatever else runs on the machine
    yield
    torch.set_num_threads(threads)


def batch():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (BATCH, LENGTH), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (BATCH,), generator=generator)}


def step_of(model, inputs):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step():
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


@pytest.mark.parametrize(
    "kind, params",
    [
        ("full", {}),
        ("freeze", {"top": 1, "patterns": ["pooler"]}),
        ("lora", {"r": 8}),
    ],
)
def test_step(benchmark, small_bert, kind, params):
    torch.manual_seed(0)
    model = build_model(kind, Checkpoint(str(small_bert), 2), params).model
    benchmark.pedantic(step_of(model, batch()), rounds=30, warmup_rounds=3)


def test_step_freeze_cached(benchmark, small_bert):
    """The step a cache_frozen run takes: only the layers above the frozen bottom."""
    torch.manual_seed(0)
    plan = build_model("freeze", Checkpoint(str(small_bert), 2), {"top": 1, "patterns": ["pooler"], "cache_frozen": True})
    inputs = batch()
    with torch.no_grad():
        hidden = FrozenPrefix(plan.model, plan.frozen_prefix)(inputs["input_ids"], inputs["attention_mask"])
    suffix = to_suffix_model(plan.model, plan.frozen_prefix)
    cached = {"inputs_embeds": hidden, "attention_mask": inputs["attention_mask"], "labels": inputs["labels"]}
    benchmark.pedantic(step_of(suffix, cached), rounds=30, warmup_rounds=3)


def test_step_head_on_cached_features(benchmark, small_bert):
    """A head run's step: the MLP on pooled features computed once."""
    torch.manual_seed(0)
    model = build_model("head", Checkpoint(str(small_bert), 2), {"hidden": [64]}).model
    inputs = batch()
    features = model.pool(inputs["input_ids"], inputs["attention_mask"])
    # 32 batches' worth of vectors in one step: a 16-vector step is too short to time reliably
    features, labels = features.repeat(32, 1), inputs["labels"].repeat(32)
    benchmark.pedantic(step_of(model, {"features": features, "labels": labels}), rounds=100, warmup_rounds=10)
