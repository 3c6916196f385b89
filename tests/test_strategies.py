"""Exact trainable-parameter counts for every strategy kind, on real tiny models.

Expected numbers are worked out by hand from the architecture (see the helpers), not read
back from the code under test.
"""

import re

import pytest
import torch

from bench.errors import BenchError
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import (
    build_model,
    parameter_counts,
    validate_strategy_params,
)

H, I, LABELS = 32, 64, 2  # hidden, intermediate (tests/conftest.py: TINY)
LINEAR_HH = H * H + H
LAYER = 4 * LINEAR_HH + 2 * H + (H * I + I) + (I * H + H) + 2 * H  # q,k,v,o + LN + FFN + LN = 8,544
CLASSIFIER = H * LABELS + LABELS  # 66
BERT_EMBEDDINGS = 1000 * H + 512 * H + 2 * H + 2 * H  # word, position, token type, LayerNorm
BERT_TOTAL = BERT_EMBEDDINGS + 2 * LAYER + LINEAR_HH + CLASSIFIER  # + pooler


def counts(checkpoint_dir, kind, meta=False, **params):
    model = build_model(kind, Checkpoint(str(checkpoint_dir), LABELS, meta=meta), params).model
    return parameter_counts(model), model


def test_tiny_bert_has_the_documented_size(bert_dir):
    assert BERT_TOTAL == 66_722  # the figure measured in ../shared/NOTES.md
    c, _ = counts(bert_dir, "full")
    assert c == {"total_params": 66_722, "trainable_params": 66_722, "trainable_pct": 100.0}


@pytest.mark.parametrize(
    "params, expected",
    [
        # the seed notebook's "embeddings + layer 0 + classifier"
        ({"patterns": ["embeddings", "layer.0.", "classifier"]}, BERT_EMBEDDINGS + LAYER + CLASSIFIER),
        # "top two layers + pooler + classifier", by position
        ({"top": 2, "patterns": ["pooler"]}, 2 * LAYER + LINEAR_HH + CLASSIFIER),
        ({"top": 1}, LAYER + CLASSIFIER),
        ({"bottom": 1}, LAYER + CLASSIFIER),
        ({"layers": [0, 1]}, 2 * LAYER + CLASSIFIER),
        ({"layers": [-1]}, LAYER + CLASSIFIER),
        ({}, CLASSIFIER),  # the head always trains
    ],
)
def test_freeze_counts(bert_dir, params, expected):
    c, _model = counts(bert_dir, "freeze", **params)
    assert c["trainable_params"] == expected
    assert c["total_params"] == BERT_TOTAL


def test_freeze_selects_the_right_layers(bert_dir):
    _, model = counts(bert_dir, "freeze", top=1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("bert.encoder.layer.1.") for n in trainable)
    assert not any(n.startswith("bert.encoder.layer.0.") for n in trainable)
    assert {"classifier.weight", "classifier.bias"} <= trainable


def test_freeze_keeps_the_seed_substring_rule(tmp_path):
    """'layer.1' is a plain substring, so on 12 layers it also matches layer.10 and layer.11."""
    from conftest import build_checkpoint

    deep = build_checkpoint(tmp_path / "deep", "bert", num_hidden_layers=12)
    c, _ = counts(deep, "freeze", patterns=["layer.1"])
    assert c["trainable_params"] == 3 * LAYER + CLASSIFIER


def test_layer_selectors_are_depth_independent(tmp_path, bert_dir):
    from conftest import build_checkpoint

    deep = build_checkpoint(tmp_path / "deep", "bert", num_hidden_layers=6)
    shallow_count, _ = counts(bert_dir, "freeze", top=2)
    deep_count, deep_model = counts(deep, "freeze", top=2)
    assert shallow_count["trainable_params"] == deep_count["trainable_params"] == 2 * LAYER + CLASSIFIER
    trainable = {n.split(".")[3] for n, p in deep_model.named_parameters() if p.requires_grad and ".layer." in n}
    assert trainable == {"4", "5"}


def test_freeze_pattern_that_matches_nothing_names_it_and_shows_real_names(bert_dir):
    with pytest.raises(BenchError) as err:
        counts(bert_dir, "freeze", patterns=["encoder.layers.0"])
    message = str(err.value)
    assert "'encoder.layers.0'" in message
    assert "bert.encoder.layer.N.attention.self.query" in message
    assert "\n" not in message


def test_freeze_layer_out_of_range(bert_dir):
    with pytest.raises(BenchError, match="out of range"):
        counts(bert_dir, "freeze", layers=[2])
    with pytest.raises(BenchError, match="exceeds"):
        counts(bert_dir, "freeze", top=3)


def test_freeze_on_roberta_and_distilbert(roberta_dir, distilbert_dir):
    roberta_head = LINEAR_HH + CLASSIFIER  # dense + out_proj
    c, _ = counts(roberta_dir, "freeze", top=1)
    assert c["trainable_params"] == LAYER + roberta_head
    distil_head = LINEAR_HH + CLASSIFIER  # pre_classifier + classifier
    c, _ = counts(distilbert_dir, "freeze", bottom=1)
    assert c["trainable_params"] == LAYER + distil_head


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, H * 64 + 64 + 64 * LABELS + LABELS),  # the second notebook: Linear(H, 64) -> ReLU -> Linear(64, 2)
        ({"hidden": [16, 8], "pooling": "mean"}, (H * 16 + 16) + (16 * 8 + 8) + (8 * LABELS + LABELS)),
        ({"hidden": [], "pooling": "cls"}, CLASSIFIER),  # a linear probe
    ],
)
def test_head_counts(bert_dir, params, expected):
    c, _model = counts(bert_dir, "head", **params)
    assert c["trainable_params"] == expected
    assert c["total_params"] == BERT_TOTAL - CLASSIFIER + expected  # backbone with pooler + new head


def test_head_backbone_stays_frozen_and_in_eval_mode(bert_dir):
    _, model = counts(bert_dir, "head", dropout=0.1)
    model.train()
    assert model.head.training and not model.backbone.training
    batch = {"input_ids": torch.tensor([[2, 7, 9, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    out = model(**batch, labels=torch.tensor([1]))
    out.loss.backward()
    assert out.logits.shape == (1, LABELS)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_head_pooler_needs_a_pooler(distilbert_dir):
    with pytest.raises(BenchError, match="no pooler"):
        counts(distilbert_dir, "head", pooling="pooler")
    c, _ = counts(distilbert_dir, "head", pooling="cls", hidden=[])
    assert c["trainable_params"] == CLASSIFIER


def test_lora_counts_bert(bert_dir):
    c, model = counts(bert_dir, "lora")  # r=8 on query and value, peft's default for BERT
    adapters = 2 * 2 * (H * 8 + 8 * H)  # 2 layers x (query, value) x (A + B)
    assert c["trainable_params"] == adapters + CLASSIFIER == 2_114  # as in ../shared/NOTES.md
    assert c["total_params"] == BERT_TOTAL + adapters + CLASSIFIER == 68_836  # head is copied by peft
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n and "query" in n for n in trainable)
    assert any("classifier" in n for n in trainable)


def test_lora_counts_roberta(roberta_dir):
    c, _ = counts(roberta_dir, "lora", r=4)
    adapters = 2 * 2 * (H * 4 + 4 * H)
    assert c["trainable_params"] == adapters + LINEAR_HH + CLASSIFIER


def test_lora_targets_every_linear_layer_where_peft_has_no_default(distilbert_dir):
    c, model = counts(distilbert_dir, "lora")  # peft has no LoRA targets for DistilBERT: peft's all-linear
    attention = 4 * 8 * (H + H)  # q_lin, k_lin, v_lin, out_lin: H -> H
    ffn = 8 * (H + 64) + 8 * (64 + H)  # lin1: H -> 64, lin2: 64 -> H
    # pre_classifier trains too: everything outside the backbone is head
    assert c["trainable_params"] == 2 * (attention + ffn) + LINEAR_HH + CLASSIFIER == 8_290
    assert not any("lora" in n for n, _ in model.named_parameters() if "classifier" in n)
    c, _ = counts(distilbert_dir, "lora", target_modules=["q_lin", "v_lin"])
    assert c["trainable_params"] == 2 * 2 * (H * 8 + 8 * H) + LINEAR_HH + CLASSIFIER


@pytest.mark.parametrize(
    "kind, params",
    [
        ("full", {}),
        ("freeze", {"top": 1, "patterns": ["pooler"]}),
        ("head", {"hidden": [64]}),
        ("lora", {"r": 4}),
    ],
)
def test_meta_device_counts_equal_real_counts(bert_dir, kind, params):
    """--dry-run counts on the meta device; they must equal what training will see."""
    real, _ = counts(bert_dir, kind, **params)
    meta, meta_model = counts(bert_dir, kind, meta=True, **params)
    assert meta == real
    assert any(p.is_meta for p in meta_model.parameters())


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("lorax", {}, "unknown strategy kind 'lorax'; known kinds: cnn, freeze, full, head, lora, peft"),
        ("lora", {"rank": 8}, "has no option 'rank'"),
        ("lora", {"r": "8"}, "'r' must be an integer"),
        ("freeze", {"patterns": "pooler"}, "'patterns' must be a list"),
        ("freeze", {"layers": [1.5]}, "'layers[0]' must be an integer"),
        ("freeze", {"top": -2}, "'top' must be zero or more"),
        ("freeze", {"patterns": ["  "]}, "'patterns[0]' must be a non-empty text"),
        ("freeze", {"biases": "yes"}, "'biases' must be true or false"),
        ("peft", {"options": ["r", 8]}, "'options' must be a mapping"),
        ("head", {"dropout": True}, "'dropout' must be a number"),
        ("lora", {"target_modules": "query"}, "'target_modules' must be a list"),
        ("full", {"top": 2}, "its options: none"),
    ],
)
def test_strategy_options_are_validated(kind, params, message):
    with pytest.raises(BenchError, match=re.escape(message)):
        validate_strategy_params(kind, params, "suite x")
