"""Tasks beyond one text column: sentence pairs, and string labels mapped to ids with the
mapping recorded in the row."""

import json

from conftest import FILLER, make_examples, write_csv, write_suite

from bench.results.store import read_rows
from bench.run import main


def pair_rows(count, seed):
    """The first text is filler; the label is decided by the sentiment word in the second."""
    import random

    rng = random.Random(seed)
    return [(" ".join(rng.choices(FILLER, k=6)), text, ("neg", "pos")[label]) for text, label in make_examples(count, seed)]


def test_sentence_pairs_train_on_both_texts_and_string_labels_are_recorded(tmp_path, bert_dir):
    data = tmp_path / "pairs"
    header = ("premise", "hypothesis", "verdict")
    write_csv(data / "train.csv", pair_rows(96, 1), header=header)
    write_csv(data / "test.csv", pair_rows(37, 2), header=header)
    suite = write_suite(tmp_path, [bert_dir], data, strategies=[{"name": "full", "kind": "full", "epochs": 15}])
    text = suite.read_text().replace("eval_split: test", "eval_split: test\n  text_column: premise\n"
                                     "  text_pair_column: hypothesis\n  label_column: verdict")
    suite.write_text(text)
    output = tmp_path / "pairs.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    (row,) = read_rows(output)
    # the label is only in the second text: a model that never saw it would sit at chance
    assert float(row["test_accuracy"]) >= 0.9
    assert json.loads(row["label_names"]) == ["neg", "pos"]
    predictions = (output.parent / row["predictions_file"]).read_text().splitlines()
    assert predictions[0] == "idx,label,prediction,loss" and predictions[1].split(",")[1] in ("neg", "pos")


def test_the_seed_notebooks_cnn_head_learns_on_cached_token_states(tmp_path, bert_dir):
    data_dir = tmp_path / "data"  # more examples than the shared fixture: a frozen random backbone generalises slowly
    write_csv(data_dir / "train.csv", make_examples(600, seed=5))
    write_csv(data_dir / "test.csv", make_examples(100, seed=6))
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=[
        {"name": "cnn", "kind": "cnn", "kernel_sizes": [1, 2], "channels": 16, "learning_rate": 1e-2, "epochs": 10}])
    output = tmp_path / "cnn.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    (row,) = read_rows(output)
    assert float(row["test_accuracy"]) >= 0.9, row["test_accuracy"]  # one sentiment word decides: a 1-token filter finds it
    assert float(row["cache_seconds"]) > 0 and int(row["trainable_params"]) == (16 * 32 + 16) + (16 * 32 * 2 + 16) + (32 * 2 + 2)
