"""A run is recorded as what happened: diverged, degenerate, out of memory, or ok."""

import csv

import torch
from conftest import make_examples, write_csv, write_suite

from bench.run import main
from bench.train.cell import failure_status


def read_rows(path):
    with open(path) as f:
        return {row["strategy"]: row for row in csv.DictReader(f)}


def test_a_diverging_run_stops_and_is_recorded_diverged_and_the_suite_goes_on(tmp_path, bert_dir, data_dir):
    suite = write_suite(
        tmp_path,
        [bert_dir],
        data_dir,
        strategies=[{"name": "explodes", "kind": "full", "learning_rate": 1e30}, {"name": "fine", "kind": "full", "epochs": 15}],
        epochs=3,
    )
    output = tmp_path / "out.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 1  # not every run is ok
    rows = read_rows(output)
    explodes = rows["explodes"]
    assert explodes["status"] == "diverged"
    assert "at step 2 (epoch 1)" in explodes["error"]  # the first step's update blows the weights up
    assert explodes["test_accuracy"] == explodes["train_loss"] == explodes["predictions_file"] == ""
    assert rows["fine"]["status"] == "ok" and rows["fine"]["degenerate"] == "False"


def test_a_model_that_predicts_one_class_is_flagged_degenerate(tmp_path, bert_dir):
    # Every training label is 1: the model learns to answer 1, whatever the text.
    folder = tmp_path / "data"
    write_csv(folder / "train.csv", [(text, 1) for text, _ in make_examples(96, seed=1)])
    write_csv(folder / "test.csv", make_examples(37, seed=2))
    suite = write_suite(tmp_path, [bert_dir], folder, epochs=3)
    output = tmp_path / "out.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0  # it ran: ok, but flagged
    row = read_rows(output)["full"]
    assert row["status"] == "ok" and row["degenerate"] == "True"
    with open(tmp_path / row["predictions_file"]) as f:
        assert {r["prediction"] for r in csv.DictReader(f)} == {"1"}


def test_out_of_memory_is_its_own_status_with_the_batch_size():
    status, error = failure_status(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 64)
    assert status == "oom" and "batch size 64" in error and "Tried to allocate" in error
    assert failure_status(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), 64)[0] == "failed"
