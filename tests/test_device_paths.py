"""What the GPU path relies on, checked where it can be on a CPU: fp32 master weights from
half-precision checkpoints, static batch shapes that compute what tight batches compute,
caches built in large batches, and a compiled run that learns as an eager one does.
(CUDA graphs themselves run only on a GPU: PERFORMANCE.md has those measurements.)"""

import csv

import pytest
import torch
from conftest import build_checkpoint, rounding_tolerance, write_suite
from safetensors import safe_open
from transformers import AutoConfig

from bench.inputs.checkpoints import Checkpoint
from bench.inputs.data import load_splits, tokenize
from bench.inputs.strategies import build_model
from bench.run import main
from bench.suite.load import load_suite
from bench.train.batches import (
    IGNORE_INDEX,
    ExampleTensors,
    IndexBatches,
    length_buckets,
)
from bench.train.features import FrozenPrefix, build_cache


@pytest.fixture(scope="module")
def accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True, mixed_precision="no")


def tokenized_cell(suite_path, checkpoint):
    cell = load_suite(str(suite_path)).cells()[0]
    splits = load_splits(cell.dataset).splits
    tokenizer = checkpoint.tokenizer()
    return cell, tokenize(splits, tokenizer, cell.hparams.max_length), tokenizer


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_checkpoint_trains_fp32_master_weights(tmp_path, data_dir, accelerator, dtype):
    from bench.train.loop import train_one

    folder = build_checkpoint(tmp_path / "half", "bert")
    from transformers import BertForSequenceClassification

    BertForSequenceClassification.from_pretrained(folder).to(dtype).save_pretrained(folder)
    with safe_open(str(folder / "model.safetensors"), "pt") as stored:
        assert stored.get_tensor("bert.pooler.dense.weight").dtype == dtype  # really stored in half precision

    checkpoint = Checkpoint(str(folder), 2)
    assert {p.dtype for p in checkpoint.backbone().parameters()} == {torch.float32}
    suite = write_suite(tmp_path, [folder], data_dir, epochs=15)
    cell, tokenized, tokenizer = tokenized_cell(suite, checkpoint)
    torch.manual_seed(0)
    plan = build_model("full", checkpoint, {})
    before = {n: p.detach().clone() for n, p in plan.model.named_parameters()}
    assert {p.dtype for p in before.values()} == {torch.float32}

    result = train_one(cell, accelerator, plan, tokenized, tokenizer)

    after = dict(plan.model.named_parameters())
    assert {p.dtype for p in after.values()} == {torch.float32}
    moved = [n for n in before if not torch.equal(before[n], after[n].detach())]
    assert len(moved) == len(before)  # every weight was updated, in fp32
    assert result.test_accuracy >= 0.9  # and it learned (chance is 0.5)


def test_static_batches_compute_what_tight_batches_compute(bert_dir):
    model = build_model("full", Checkpoint(str(bert_dir), 2), {}).model.eval()
    lengths = [5, 9, 7]
    ids = torch.zeros(3, 32, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, 30, (n,))
    mask = (ids != 0).long()
    examples = ExampleTensors({"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}, lengths)
    idx = torch.tensor([2, 0, 1])

    tight = examples.batch(idx, 9)
    static = examples.batch(idx, 16, rows=8)  # a bucket width and the full batch size
    assert static["input_ids"].shape == (8, 16) and tight["input_ids"].shape == (3, 9)
    assert static["labels"].tolist() == [1, 0, 1] + [IGNORE_INDEX] * 5
    with torch.no_grad():
        out_tight, out_static = model(**tight), model(**static)
    # other shapes, other kernels: equal up to what float32 rounding can make (conftest.rounding_tolerance)
    tolerance = rounding_tolerance(model.config, 16)
    torch.testing.assert_close(out_static.logits[:3], out_tight.logits, **tolerance)
    torch.testing.assert_close(out_static.loss, out_tight.loss, **tolerance)  # padded rows are ignored


def test_length_buckets_and_batch_widths():
    assert length_buckets(128, 1) == [128]
    assert length_buckets(128, 8) == [16, 32, 48, 64, 80, 96, 112, 128]
    assert length_buckets(100, 4) == [32, 56, 80, 100]  # multiples of 8, never past max_length
    lengths = [3, 30, 17, 100, 64]
    bucketed = IndexBatches(lengths, [32, 56, 80, 100])
    assert [bucketed.width([i]) for i in range(5)] == [32, 32, 32, 100, 80]
    assert bucketed.widths() == [32, 80, 100]
    assert bucketed([0, 2]) | {"idx": None} == {"idx": None, "width": 32, "tokens": 20}
    assert IndexBatches(lengths, None, multiple=8).width([0, 2]) == 24  # eager CUDA: longest, rounded to 8
    assert IndexBatches(lengths, None).width([0, 2]) == 17


@pytest.mark.parametrize("strategy", [{"kind": "freeze", "top": 1, "cache_frozen": True}, {"kind": "head", "pooling": "mean"}])
def test_a_cache_built_in_large_batches_matches_one_example_at_a_time(tmp_path, data_dir, accelerator, strategy):
    folder = build_checkpoint(tmp_path / "deep", "bert", num_hidden_layers=3)
    checkpoint = Checkpoint(str(folder), 2)
    kind, params = strategy["kind"], {k: v for k, v in strategy.items() if k != "kind"}
    suite = write_suite(tmp_path, [folder], data_dir)
    _, tokenized, tokenizer = tokenized_cell(suite, checkpoint)
    examples = ExampleTensors.from_tokenized(tokenized["eval"], tokenizer.pad_token_id, 32, "cpu")
    plan = build_model(kind, checkpoint, params)

    cache = build_cache(plan, accelerator, examples, torch.float32)

    frozen = plan.features if kind == "head" else FrozenPrefix(plan.model, plan.frozen_prefix)
    key = "features" if kind == "head" else "inputs_embeds"
    assert len(cache) == len(examples) and torch.equal(cache.tensors["labels"], examples.tensors["labels"])
    with torch.no_grad():
        for i in (0, 5, len(examples) - 1):
            n = examples.lengths[i]
            alone = frozen(**{k: v[i : i + 1, :n] for k, v in examples.tensors.items() if k != "labels"})
            cached = cache.tensors[key][i : i + 1] if kind == "head" else cache.tensors[key][i : i + 1, :n]
            torch.testing.assert_close(cached, alone, **rounding_tolerance(AutoConfig.from_pretrained(folder), 32))  # other batch shapes
    assert not any(p.is_inference() for p in plan.model.parameters())  # built under no_grad, not inference_mode


def test_a_compiled_run_learns_as_an_eager_one(tmp_path, bert_dir, data_dir):
    """compile: true on CPU (inductor, no CUDA graphs): static shapes, capture before the
    clocks, FLOPs counted eagerly; the task is learned and the columns say what happened."""
    rows = {}
    for compile_setting in (False, True):
        suite = write_suite(tmp_path, [bert_dir], data_dir, name=f"c{int(compile_setting)}", epochs=15, max_length=16,
                            compile=compile_setting)
        output = tmp_path / f"c{int(compile_setting)}.csv"
        assert main(["--suite", str(suite), "--output", str(output)]) == 0
        with open(output) as f:
            (rows[compile_setting],) = csv.DictReader(f)
    eager, compiled = rows[False], rows[True]
    assert (eager["compile"], eager["compile_seconds"]) == ("off", "")
    assert compiled["compile"] == "default" and float(compiled["compile_seconds"]) > 0
    assert float(compiled["test_accuracy"]) >= 0.9 and float(eager["test_accuracy"]) >= 0.9
    assert float(compiled["train_flops_per_step"]) > 0 and float(compiled["mfu"]) > 0
    # one width (max_length) when compiled: more padding than the tightest batches
    assert float(compiled["padding_waste"]) > float(eager["padding_waste"]) >= 1.0


def test_run_result_computes_throughput_and_mfu_from_what_was_measured():
    from bench.train.measure import RunResult

    result = RunResult(
        train_loss=0.3, test_loss=0.5, test_accuracy=0.9, validation_loss=0.4, validation_accuracy=0.85, degenerate=False,
        train_examples=1000, validation_examples=100, test_examples=200, epochs=2, epochs_run=2, selected_epoch=2,
        train_tokens=50_000, train_seconds=10.0, validation_seconds=1.0, test_seconds=2.0, cache_seconds=None,
        reused_cache_seconds=None, compile_seconds=5.0,
        steady_samples=1800, steady_seconds=8.0, steady_padded_tokens=115_200, padding_waste=1.28,
        flops_per_step=6.4e9, flops_per_padded_token=1e6, peak_tflops=2.0, peak_memory_mb=100.0,
        memory_measure="cpu_peak_rss", compile_mode=None, history=[], predictions=[],
    )
    columns = result.columns()
    assert columns["train_samples_per_s"] == 200.0  # 1000 x 2 epochs / 10 s
    assert columns["steady_train_samples_per_s"] == 225.0  # 1800 / 8 s
    assert columns["train_tokens_per_s"] == 10_000.0
    assert columns["test_samples_per_s"] == 100.0  # one test pass: 200 / 2 s
    assert columns["achieved_tflops"] == pytest.approx(1e6 * 115_200 / 8.0 / 1e12)
    assert columns["mfu"] == pytest.approx(columns["achieved_tflops"] / 2.0)
    assert columns["loss_ratio"] == pytest.approx(0.75)  # train / validation loss
    import dataclasses

    # a held-out loss of exactly 0 (confident, correct logits on a tiny set): no ratio, no crash
    assert dataclasses.replace(result, validation_loss=0.0).columns()["loss_ratio"] is None
    assert dataclasses.replace(result, validation_loss=None).columns()["loss_ratio"] == pytest.approx(0.6)  # / test loss
    assert (columns["compile_seconds"], columns["padding_waste"]) == (5.0, 1.28)
