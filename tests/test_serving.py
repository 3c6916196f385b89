"""Serving measurements (bench/serving.py) on tiny real models: percentiles ordered and taken
over at least the stated calls, a merged LoRA predicts as the unmerged one, a prompt-tuning
model's input length includes its virtual tokens."""

import torch

from bench.checkpoints import Checkpoint
from bench.serving import batch1_latency, merged, model_input_tokens, throughput
from bench.strategies import build_model
from conftest import make_examples

TEXTS = [text for text, _ in make_examples(40, seed=3)]
CPU = torch.device("cpu")


def _model(bert_dir, kind, params=None):
    checkpoint = Checkpoint(str(bert_dir), num_labels=2)
    torch.manual_seed(0)
    return build_model(kind, checkpoint, params or {}).model.eval(), checkpoint.tokenizer()


def test_batch1_latency_percentiles_are_ordered_over_at_least_the_stated_calls(bert_dir):
    model, tokenizer = _model(bert_dir, "full")
    latency = batch1_latency(model, tokenizer, TEXTS, 32, CPU, min_calls=30, min_seconds=0.2, warmup=3)
    assert latency.calls >= 30
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms
    assert latency.tokenize_ms > 0 and 0 < latency.input_tokens <= 32
    rate = throughput(model, tokenizer, TEXTS, 32, CPU, batch_size=8, min_calls=5, min_seconds=0.2)
    assert rate.calls >= 5 and rate.samples_per_s > 0 and rate.batch_size == 8


def test_a_merged_lora_predicts_what_the_unmerged_one_predicts(bert_dir):
    model, tokenizer = _model(bert_dir, "lora", {"r": 4})
    with torch.no_grad():  # move the adapters off their zero start, so merging has something to merge
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    encoded = tokenizer(TEXTS, truncation=True, max_length=32, padding=True, return_tensors="pt")
    deployable = merged(model)
    assert not any("lora" in name for name, _ in deployable.named_parameters())
    with torch.no_grad():
        before, after = model(**encoded).logits, deployable(**encoded).logits
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert any("lora" in name for name, _ in model.named_parameters())  # the trained model is left as it was


def test_a_prompt_tuning_model_sees_its_virtual_tokens(bert_dir):
    model, tokenizer = _model(bert_dir, "peft", {"method": "prompt_tuning", "options": {"num_virtual_tokens": 4}})
    encoded = tokenizer([TEXTS[0]], truncation=True, max_length=32, return_tensors="pt")
    assert model_input_tokens(model, encoded) == int(encoded["attention_mask"].sum()) + 4
    plain, _ = _model(bert_dir, "full")
    assert model_input_tokens(plain, encoded) == int(encoded["attention_mask"].sum())
