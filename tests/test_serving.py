"""Serving measurements (bench/deploy/serving.py) on tiny real models: percentiles ordered and taken
over at least the stated calls, a merged LoRA predicts as the unmerged one, a prompt-tuning
model's input length includes its virtual tokens."""

import pytest
import torch
from conftest import make_examples, rounding_tolerance

from bench.deploy.serving import (
    Requests,
    batch1_latency,
    merged_adapter,
    model_input_tokens,
    throughput,
)
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import build_model

TEXTS = [text for text, _ in make_examples(40, seed=3)]
CPU = torch.device("cpu")


def _model(bert_dir, kind, params=None):
    checkpoint = Checkpoint(str(bert_dir), num_labels=2)
    torch.manual_seed(0)
    return build_model(kind, checkpoint, params or {}).model.eval(), checkpoint.tokenizer()


def test_batch1_latency_percentiles_are_ordered_over_at_least_the_stated_calls(bert_dir):
    model, tokenizer = _model(bert_dir, "full")
    latency = batch1_latency(model, Requests(TEXTS, tokenizer, 32, CPU), min_calls=30, min_seconds=0.2, warmup=3)
    assert latency.calls >= 30
    assert 0 < latency.p50_ms <= latency.p95_ms <= latency.p99_ms
    assert latency.tokenize_ms > 0 and 0 < latency.input_tokens <= 32
    rate = throughput(model, Requests(TEXTS, tokenizer, 32, CPU), batch_size=8, min_calls=5, min_seconds=0.2)
    assert rate.calls >= 5 and rate.samples_per_s > 0 and rate.batch_size == 8


def test_a_merged_lora_predicts_what_the_unmerged_one_predicts(bert_dir):
    model, tokenizer = _model(bert_dir, "lora", {"r": 4})
    with torch.no_grad():  # move the adapters off their zero start, so merging has something to merge
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    encoded = tokenizer(TEXTS, truncation=True, max_length=32, padding=True, return_tensors="pt")
    deployable = merged_adapter(model)
    assert not any("lora" in name for name, _ in deployable.named_parameters())
    with torch.no_grad():
        before, after = model(**encoded).logits, deployable(**encoded).logits
    assert torch.equal(before.argmax(-1), after.argmax(-1))
    torch.testing.assert_close(after, before, **rounding_tolerance(deployable.config, 32))  # W + BA summed first
    assert any("lora" in name for name, _ in model.named_parameters())  # the trained model is left as it was


def test_a_prompt_tuning_model_sees_its_virtual_tokens(bert_dir):
    model, tokenizer = _model(bert_dir, "peft", {"method": "prompt_tuning", "options": {"num_virtual_tokens": 4}})
    encoded = tokenizer([TEXTS[0]], truncation=True, max_length=32, return_tensors="pt")
    assert model_input_tokens(model, encoded) == int(encoded["attention_mask"].sum()) + 4
    plain, _ = _model(bert_dir, "full")
    assert model_input_tokens(plain, encoded) == int(encoded["attention_mask"].sum())


def test_serving_cost_arithmetic_against_values_worked_out_by_hand():
    import pytest

    from bench.decision.cost import (
        Price,
        break_even_traffic,
        serving_cost_per_million,
        total_cost,
    )

    h100 = Price(2.99, "assumed")
    # 1,000 predictions/s for an hour = 3.6M predictions for $2.99: $0.8306 per million
    assert serving_cost_per_million(1000.0, h100) == pytest.approx(2.99 / 3.6)
    assert total_cost(5.0, 0.8, 2_000_000, 12) == pytest.approx(5.0 + 0.8 * 2 * 12)
    # A: $1 to train, $2 per million; B: $25 to train, $0.5 per million; over 12 months they
    # cost the same at 24 / (1.5 x 12) = 1.333M predictions a month
    crossing = break_even_traffic((1.0, 2.0), (25.0, 0.5), months=12)
    assert crossing == pytest.approx(24 / 18 * 1e6)
    assert total_cost(1.0, 2.0, crossing, 12) == pytest.approx(total_cost(25.0, 0.5, crossing, 12))
    assert total_cost(1.0, 2.0, 2 * crossing, 12) > total_cost(25.0, 0.5, 2 * crossing, 12)  # above it, B
    assert break_even_traffic((1.0, 0.5), (25.0, 2.0), months=12) is None  # dearer to serve: never
    assert break_even_traffic((25.0, 2.0), (1.0, 0.5), months=12) == 0.0  # cheaper at both: always
    with pytest.raises(ValueError):
        serving_cost_per_million(0.0, h100)


def test_every_ok_run_is_measured_as_served_and_no_serving_turns_it_off(tmp_path, bert_dir, data_dir, capsys):
    """A real suite: serving figures in every ok row, a LoRA served merged (with its unmerged
    figures and the same predictions), a cached freeze run served whole, a prompt-tuning run
    paying for its virtual tokens; --no-serving leaves the columns empty."""
    from conftest import QUICK_SERVING, write_suite

    from bench.results.store import read_results
    from bench.run import main

    strategies = [
        {"name": "full", "kind": "full"},
        {"name": "lora", "kind": "lora", "r": 4},
        {"name": "head", "kind": "head", "pooling": "mean"},
        {"name": "top1-cached", "kind": "freeze", "top": 1, "cache_frozen": True},
        {"name": "prompt", "kind": "peft", "method": "prompt_tuning", "options": {"num_virtual_tokens": 4}},
    ]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, dataset={"validation_size": 16},
                        serving={**QUICK_SERVING, "batch_sizes": [4, 8], "min_calls": 12})
    report = tmp_path / "served.csv"
    assert main(["--suite", str(suite), "--output", str(report)]) == 0, capsys.readouterr().err[-2000:]
    rows = {r["strategy"]: r for r in read_results(report)}
    for name, row in rows.items():
        assert row["status"] == "ok" and not row.get("serving_error"), name
        assert row["serving_latency_calls"] >= 12
        assert 0 < row["serving_latency_p50_ms"] <= row["serving_latency_p95_ms"] <= row["serving_latency_p99_ms"]
        assert set(row["serving_throughput"]) == {"4", "8"}
        best = max(row["serving_throughput"].values())  # the JSON keeps 2 decimals
        assert row["serving_samples_per_s"] == pytest.approx(best, abs=0.005)
        assert row["serving_memory_mb"] > 0 and row["serving_stored_mb"] > 0
    whole_mb = rows["full"]["total_params"] * 4 / 2**20
    assert rows["full"]["serving_stored_mb"] == pytest.approx(whole_mb, rel=1e-4)
    assert rows["top1-cached"]["serving_stored_mb"] == pytest.approx(whole_mb, rel=1e-4)  # served whole, bottom back in place
    assert rows["head"]["serving_stored_mb"] == pytest.approx(rows["head"]["trainable_params"] * 4 / 2**20, rel=1e-4)
    lora = rows["lora"]
    assert lora["serving_form"] == "merged" and lora["merged_agreement"] == 1.0
    assert lora["unmerged_samples_per_s"] > 0 and lora["unmerged_latency_p50_ms"] > 0
    assert lora["unmerged_stored_mb"] == pytest.approx(lora["trainable_params"] * 4 / 2**20, rel=1e-4)
    assert lora["unmerged_stored_mb"] < lora["serving_stored_mb"] == pytest.approx(whole_mb, rel=1e-4)
    assert rows["prompt"]["serving_form"] == "as trained"  # prompts cannot be merged
    assert rows["prompt"]["serving_input_tokens"] == rows["full"]["serving_input_tokens"] + 4

    quiet = tmp_path / "quiet.csv"
    assert main(["--suite", str(suite), "--output", str(quiet), "--no-serving"]) == 0
    assert all(not r["serving_form"] and r["serving_samples_per_s"] is None for r in read_results(quiet))


def test_each_served_computation_is_timed_once_and_carried_by_the_runs_that_serve_it(tmp_path, bert_dir, data_dir, capsys):
    """Full fine-tuning and partial freezing serve the same model; the points of a LoRA sweep
    serve the same adapter: each is timed once, and the other runs carry that timing, named,
    with their own stored size and merged agreement. A rerun that adds a point times nothing new."""
    from conftest import QUICK_SERVING, write_suite

    from bench.deploy.serving import TIMED
    from bench.results.store import read_results
    from bench.run import main

    strategies = [
        {"name": "full", "kind": "full"},
        {"name": "top1", "kind": "freeze", "top": 1},
        {"name": "lora", "kind": "lora", "r": 4, "sweep": {"learning_rate": [1e-3, 3e-3]}},
        {"name": "head", "kind": "head", "hidden": [8]},
    ]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, dataset={"validation_size": 16},
                        serving=QUICK_SERVING)
    report = tmp_path / "once.csv"
    assert main(["--suite", str(suite), "--output", str(report)]) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    rows = read_results(report)
    by = {(r["strategy"], r["learning_rate"]): r for r in rows}
    full, top1, head = by["full", 1e-3], by["top1", 1e-3], by["head", 1e-3]
    lora1, lora3 = by["lora", 1e-3], by["lora", 3e-3]
    assert {r["serving_measured_by"] for r in (full, lora1, head)} == {full["run_id"], lora1["run_id"], head["run_id"]}
    assert top1["serving_measured_by"] == full["run_id"] and top1["serving_computation"] == full["serving_computation"]
    assert lora3["serving_measured_by"] == lora1["run_id"]
    assert len({r["serving_computation"] for r in rows}) == 3  # the plain model, the adapter, the head
    for carrier, timer in ((top1, full), (lora3, lora1)):
        assert all(carrier[name] == timer[name] for name in TIMED)
    assert lora3["merged_agreement"] == 1.0 and lora3["serving_stored_mb"] == lora1["serving_stored_mb"]
    assert top1["serving_stored_mb"] == full["serving_stored_mb"]  # both change pretrained weights: stored whole
    # three computations timed, two runs carrying (what each run did, not its clocks: a carrier's
    # own serving_seconds, merging and checking agreement, can exceed a tiny model's timing)
    assert out.count("batch-1 latency and throughput at batch") == 3 and out.count("timed once: its figures carried") == 2
    # a wider sweep on a rerun: the new point carries the report's timing of the adapter
    wider = write_suite(tmp_path, [bert_dir], data_dir, strategies=[{**strategies[2], "sweep": {"learning_rate": [1e-3, 3e-3, 1e-2]}}],
                        dataset={"validation_size": 16}, serving=QUICK_SERVING)
    assert main(["--suite", str(wider), "--output", str(report)]) == 0
    (new,) = [r for r in read_results(report) if r["learning_rate"] == 1e-2]
    assert new["serving_measured_by"] == lora1["run_id"]
