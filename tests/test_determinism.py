"""The same cell with the same seed gives the same run on CPU: losses, accuracy, predictions."""

import csv
import json

from conftest import write_suite

from bench.run import main


def test_the_same_seed_twice_gives_identical_losses_and_predictions(tmp_path, bert_dir, data_dir):
    strategies = [{"name": "full", "kind": "full"}, {"name": "head", "kind": "head", "hidden": [8], "dropout": 0.1}]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, epochs=2)
    runs = []
    for attempt in (1, 2):
        output = tmp_path / f"run{attempt}.csv"
        assert main(["--suite", str(suite), "--output", str(output)]) == 0
        with open(output) as f:
            runs.append(list(csv.DictReader(f)))
    for first, second in zip(*runs):
        assert first["run_id"] == second["run_id"]
        assert json.loads(first["history"])[-1]["train_loss"] == json.loads(second["history"])[-1]["train_loss"]
        assert [h["train_loss"] for h in json.loads(first["history"])] == [h["train_loss"] for h in json.loads(second["history"])]
        assert first["test_loss"] == second["test_loss"]
        assert first["test_accuracy"] == second["test_accuracy"]
        predictions = [(tmp_path / row["predictions_file"]).read_text() for row in (first, second)]
        assert predictions[0] == predictions[1]
