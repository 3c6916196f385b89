"""What makes runs fast must not change what they compute: caches of frozen outputs,
length-grouped batches, tokenization once per suite; and the speed columns must add up."""

import csv
import json

import pytest
import torch
from conftest import build_checkpoint, run_cli, write_suite

from bench.errors import BenchError
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.data import LengthGroupedBatches
from bench.inputs.strategies import build_model
from bench.results.columns import NAMES
from bench.results.store import append_row
from bench.run import main
from bench.train.features import FrozenPrefix, to_suffix_model


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_cached_frozen_prefix_gives_the_same_logits(tmp_path, family):
    layers = {"n_layers": 4} if family == "distilbert" else {"num_hidden_layers": 4}
    folder = build_checkpoint(tmp_path / family, family, **layers)
    plan = build_model("freeze", Checkpoint(str(folder), 2), {"top": 1, "cache_frozen": True})
    model = plan.model.eval()
    assert plan.frozen_prefix[1] == 3  # layers 0-2 are the frozen bottom
    ids = torch.randint(5, 300, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # padding must be handled by the layers above, as before
    with torch.no_grad():
        reference = model(input_ids=ids, attention_mask=mask).logits
        hidden = FrozenPrefix(model, plan.frozen_prefix)(ids, mask)
        suffix = to_suffix_model(model, plan.frozen_prefix)
        cached = suffix(inputs_embeds=hidden, attention_mask=mask).logits
    torch.testing.assert_close(cached, reference, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in suffix.parameters() if p.requires_grad) > 0


def test_cache_frozen_needs_a_frozen_bottom(bert_dir):
    with pytest.raises(BenchError, match="frozen embeddings"):
        build_model("freeze", Checkpoint(str(bert_dir), 2), {"patterns": ["embeddings"], "top": 1, "cache_frozen": True})
    with pytest.raises(BenchError, match="lowest encoder layer"):
        build_model("freeze", Checkpoint(str(bert_dir), 2), {"bottom": 1, "cache_frozen": True})


def test_length_grouped_batches():
    lengths = [(i * 37) % 100 + 1 for i in range(1000)]
    sampler = LengthGroupedBatches(lengths, batch_size=16, shuffle=True, seed=3, megabatch=5)
    first, second = list(sampler), list(sampler)
    for batches in (first, second):
        assert sorted(i for b in batches for i in b) == list(range(1000))  # every example once per pass
        assert len(batches) == len(sampler) == 63
    assert first != second  # a new order every epoch
    assert first == list(LengthGroupedBatches(lengths, 16, shuffle=True, seed=3, megabatch=5))  # same seed, same order
    # grouping: the padding a batch needs is far below what random batches need
    padding = lambda batches: sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    random_batches = [list(range(k, min(k + 16, 1000))) for k in range(0, 1000, 16)]
    assert padding(first) < padding(random_batches) / 3
    ordered = list(LengthGroupedBatches(lengths, 16, shuffle=False))
    assert [lengths[b[0]] for b in ordered] == sorted((lengths[b[0]] for b in ordered), reverse=True)


def test_every_process_trains_every_example_every_epoch_when_batches_are_sharded():
    """accelerate's BatchSamplerShard expects only the last batch to be short; with the short
    batch kept last, 2 processes see all 75 examples in every epoch (before, some epochs lost
    two batches)."""
    from accelerate.data_loader import BatchSamplerShard

    lengths = [(i * 37) % 20 + 1 for i in range(75)]
    for seed in range(8):
        sampler = LengthGroupedBatches(lengths, 8, shuffle=True, seed=seed, short_last=True)
        for _ in range(3):  # epochs: each process draws the same pass of the sampler
            shards = []
            for index in (0, 1):
                epoch = sampler.passes
                shards.append(list(BatchSamplerShard(sampler, 2, index, split_batches=False, even_batches=True)))
                sampler.passes = epoch if index == 0 else sampler.passes
            assert len(shards[0]) == len(shards[1]) == 5
            assert {i for shard in shards for batch in shard for i in batch} == set(range(75)), seed
    plain = list(LengthGroupedBatches(lengths, 8, shuffle=True, seed=1))
    kept_last = list(LengthGroupedBatches(lengths, 8, shuffle=True, seed=1, short_last=True))
    assert [b for b in plain if len(b) == 8] == kept_last[:-1] and len(kept_last[-1]) == 3


@pytest.fixture(scope="module")
def speed_report(tmp_path_factory, bert_dir, data_dir):
    tmp = tmp_path_factory.mktemp("speed")
    suite = write_suite(
        tmp,
        [bert_dir],
        data_dir,
        strategies=[
            {"name": "full", "kind": "full"},
            {"name": "top1", "kind": "freeze", "top": 1},
            {"name": "top1-cached", "kind": "freeze", "top": 1, "cache_frozen": True},
            {"name": "head", "kind": "head", "hidden": [16]},
            # trainable embeddings under frozen layers: backward has to run through every layer
            {"name": "embeddings", "kind": "freeze", "patterns": ["embeddings"]},
        ],
        epochs=3,
    )
    output = tmp / "speed.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    with open(output) as f:
        return {row["strategy"]: row for row in csv.DictReader(f)}


def test_speed_columns_are_filled_and_consistent(speed_report):
    for name, row in speed_report.items():
        flops, achieved, peak, mfu = (float(row[c]) for c in ("train_flops_per_step", "achieved_tflops", "peak_tflops", "mfu"))
        assert flops > 0 and achieved > 0 and peak > 0
        assert mfu == pytest.approx(achieved / peak, rel=1e-4)
        # FLOPs are counted at the widest batch and scaled by the padded tokens each batch had:
        # never more than the widest step's FLOPs per sample x samples/s
        assert achieved <= flops / 8 * float(row["steady_train_samples_per_s"]) / 1e12 * (1 + 1e-3)
        if name != "head":  # batches are padded to their longest example, no further (not compiled on CPU)
            assert 1.0 <= float(row["padding_waste"]) < 1.5 and row["compile"] == "off" and row["compile_seconds"] == ""
        assert float(row["train_tokens_per_s"]) > float(row["train_samples_per_s"]) > 0
        assert row["peak_source"].startswith("measured:cpu matmul fp32")


def test_no_backward_through_the_frozen_bottom(speed_report):
    """FlopCounterMode sees what really runs: less backward when the bottom is frozen, less
    still when the frozen bottom's outputs come from the cache, least for a head on features."""
    flops = {name: float(row["train_flops_per_step"]) for name, row in speed_report.items()}
    assert flops["full"] > flops["top1"] > flops["top1-cached"] > flops["head"]
    # Backward that reached the frozen layer would cost what the `embeddings` run pays (about
    # 0.70 of full on this model); stopping at the top layer costs about 0.61.
    assert flops["top1"] < 0.65 * flops["full"] < flops["embeddings"]


def test_caches_are_timed_and_change_nothing_they_should_not(speed_report):
    top1, cached, head = speed_report["top1"], speed_report["top1-cached"], speed_report["head"]
    assert top1["cache_seconds"] == "" and float(cached["cache_seconds"]) > 0 and float(head["cache_seconds"]) > 0
    for row in (cached, head):  # the cache's time is inside the clocks, not left out of them
        assert float(row["train_seconds"]) + float(row["test_seconds"]) > float(row["cache_seconds"])
    assert top1["trainable_params"] == cached["trainable_params"]  # same model, same parameters train
    assert len(json.loads(head["history"])) == 3


def test_tokenization_happens_once_per_tokenizer_in_a_suite(speed_report):
    seconds = [float(speed_report[name]["tokenize_seconds"]) for name in ("full", "top1", "top1-cached", "head")]
    assert all(s < 0.01 for s in seconds[1:]), seconds


def test_an_older_report_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    old_columns = [c for c in NAMES if c not in ("mfu", "achieved_tflops", "tokenize_seconds")]
    path = tmp_path / "old.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_columns)
        writer.writeheader()
        writer.writerow({"suite": "old", "run_id": "aaaaaaaaaaaa", "status": "ok", "test_accuracy": "0.808"})
    append_row(path, {"suite": "new", "run_id": "bbbbbbbbbbbb", "status": "ok", "mfu": 0.3})
    with path.open() as f:
        rows = list(csv.DictReader(f))
        assert list(rows[0]) == NAMES
    assert (rows[0]["suite"], rows[0]["test_accuracy"], rows[0]["mfu"]) == ("old", "0.808", "")
    assert (rows[1]["suite"], rows[1]["mfu"]) == ("new", "0.3")


def test_bf16_autocast_runs_on_cpu(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir, mixed_precision="bf16")
    output = tmp_path / "bf16.csv"
    result = run_cli("--suite", suite, "--output", output)  # own process: accelerate fixes precision per process
    assert result.returncode == 0, result.stderr[-2000:]
    with open(output) as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "ok" and row["mixed_precision"] == "bf16"
    assert row["peak_source"].startswith("measured:cpu matmul bf16")
