"""--save keeps a run's trained parameters; bench/predict.py rebuilds the model from the
checkpoint and its strategy, loads them, and classifies new text as the run did."""

import csv
import json
import subprocess
import sys

import pytest

from bench.predict import predict
from bench.results_csv import read_rows
from bench.run import main
from conftest import ROOT, write_suite

STRATEGIES = [
    {"name": "full", "kind": "full", "epochs": 10},  # long enough to learn: its predictions are not all one class
    {"name": "freeze-cached", "kind": "freeze", "top": 1, "cache_frozen": True},
    {"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2},
    {"name": "lora", "kind": "lora", "r": 4, "learning_rate": 1e-2},
    {"name": "cnn", "kind": "cnn", "kernel_sizes": [2], "channels": 8, "learning_rate": 1e-2},
    {"name": "prompt", "kind": "peft", "method": "prompt_tuning", "options": {"num_virtual_tokens": 4}, "learning_rate": 1e-2},
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, bert_dir, data_dir):
    tmp = tmp_path_factory.mktemp("saved")
    suite = write_suite(tmp, [bert_dir], data_dir, strategies=STRATEGIES, epochs=2)
    output = tmp / "saved.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--save"]) == 0
    return output, {row["strategy"]: row for row in read_rows(output)}


@pytest.mark.parametrize("strategy", [s["name"] for s in STRATEGIES])
def test_a_saved_run_predicts_what_it_predicted_in_evaluation(saved, data_dir, strategy):
    output, rows = saved
    row = rows[strategy]
    folder = output.parent / row["saved_model"]
    assert json.loads((folder / "run.json").read_text())["kind"] == row["strategy_kind"]
    with (data_dir / "test.csv").open() as f:
        texts = [r["text"] for r in csv.DictReader(f)]  # the whole test split in file order: idx = row
    with (output.parent / row["predictions_file"]).open() as f:
        evaluated = {int(r["idx"]): r["prediction"] for r in csv.DictReader(f)}
    predicted = predict(folder, texts)
    assert [str(label) for label, _ in predicted] == [evaluated[i] for i in range(len(texts))]
    assert all(0.5 <= p <= 1 for _, p in predicted)


def test_only_the_trained_part_is_kept(saved):
    output, rows = saved
    size = {s: (output.parent / rows[s]["saved_model"] / "trainable.safetensors").stat().st_size for s in rows}
    assert all(size[s] < size["full"] / 10 for s in ("lora", "head", "cnn", "prompt"))


def test_predict_command_line(saved):
    output, rows = saved
    run_id = rows["full"]["run_id"]
    result = subprocess.run([sys.executable, "-m", "bench.predict", run_id, "a superb film", "--models", str(output.parent / "saved.models")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    label, probability, text = result.stdout.strip().split("\t")
    assert label in ("0", "1") and 0.5 <= float(probability) <= 1 and text == "a superb film"
    missing = subprocess.run([sys.executable, "-m", "bench.predict", "000000000000", "x", "--models", str(output.parent)],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no saved run '000000000000'")
