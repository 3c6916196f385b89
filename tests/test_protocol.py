"""The selection protocol through real runs at tiny size: three disjoint splits, the test split
scored once per run, sweeps expanded and chosen on validation (sweep_seeds: first included),
select: best restoring the kept epoch, frozen features shared across cells, device kinds in ids."""

import json

import pytest
import torch
from conftest import make_examples, write_csv, write_suite

import bench.train.loop
from bench.inputs.data import load_splits
from bench.results.store import read_results
from bench.run import main
from bench.suite.load import load_suite
from bench.suite.schema import DatasetSpec


@pytest.fixture(scope="module")
def duplicated_data(tmp_path_factory):
    """train.csv whose reviews 0-9 appear twice (as IMDB's do), test.csv apart."""
    folder = tmp_path_factory.mktemp("dup")
    rows = make_examples(100, seed=5)
    write_csv(folder / "train.csv", rows + rows[:10])
    write_csv(folder / "test.csv", make_examples(30, seed=6))
    write_csv(folder / "validation.csv", make_examples(25, seed=7) + rows[20:22])  # two of them also train reviews
    return folder


def test_validation_is_disjoint_from_train_by_row_and_by_text(duplicated_data):
    spec = DatasetSpec(data_dir=str(duplicated_data), validation_size=30)
    splits, _, sizes, _ = load_splits(spec)
    train, validation = splits["train"]["text"], splits["validation"]["text"]
    assert len(validation) == 30 and sizes["train"] == 110
    assert not set(train) & set(validation)  # a review duplicated in the source is never on both sides
    # every source row is in at most one split: train + validation + the dropped copies = the source
    dropped = 110 - 30 - len(train)
    assert 0 < dropped <= 10 and len(train) + len(validation) + dropped == 110
    assert len(splits["eval"]) == 30
    # the same carve every time (fixed shuffle seed): every cell sees the same examples
    again = load_splits(spec).splits
    assert again["validation"]["text"] == validation and again["train"]["text"] == train


def test_a_named_validation_split_is_kept_apart_from_train(duplicated_data):
    splits = load_splits(DatasetSpec(data_dir=str(duplicated_data), validation_split="validation")).splits
    assert len(splits["validation"]) == 27
    assert not set(splits["train"]["text"]) & set(splits["validation"]["text"])


def test_learning_curve_train_sizes_are_nested_and_disjoint_from_validation(duplicated_data, tmp_path, bert_dir):
    suite = load_suite(str(write_suite(tmp_path, [bert_dir], duplicated_data,
                                       dataset={"validation_size": 20, "train_sizes": [20, 40]})))
    cells = suite.cells()
    assert [c.dataset.train_size for c in cells] == [20, 40]
    assert cells[0].tuning_id() != cells[1].tuning_id()  # each size is its own decision
    splits = load_splits(suite.dataset).splits
    assert len(splits["train"]) == 40  # the largest; a cell of 20 takes the first 20 (bench/run.py)


def test_the_test_split_is_scored_once_per_run_and_epochs_on_validation(tmp_path, bert_dir, data_dir, monkeypatch):
    scored = []
    real = bench.train.loop.evaluate_model

    def counting(model, loader, examples, accelerator, accuracy):
        scored.append(len(examples))
        return real(model, loader, examples, accelerator, accuracy)

    monkeypatch.setattr(bench.train.loop, "evaluate_model", counting)
    suite = write_suite(tmp_path, [bert_dir], data_dir, epochs=3, seeds=[0, 1], dataset={"validation_size": 20})
    output = tmp_path / "r.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    assert scored.count(37) == 2  # the test split: once per run, two runs
    assert scored.count(20) == 6  # validation: every epoch of every run
    for row in read_results(output):
        assert [h["epoch"] for h in row["history"]] == [1, 2, 3]
        assert all("validation_accuracy" in h and "test_accuracy" not in h for h in row["history"])
        assert row["validation_split"] == "carved from train" and row["test_split"] == "test"
        assert row["loss_ratio"] == pytest.approx(row["train_loss"] / row["validation_loss"], rel=1e-4)


def test_a_sweep_is_one_cell_per_point_each_validated(tmp_path, bert_dir, data_dir):
    strategies = [{"name": "lora", "kind": "lora", "sweep": {"learning_rate": [1e-3, 2e-3], "r": [2, 4]}}]
    suite = load_suite(str(write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, seeds=[0, 1],
                                       dataset={"validation_size": 20})))
    cells = suite.cells()
    assert len(cells) == 8 and len({c.run_id() for c in cells}) == 8
    assert len({c.config_id() for c in cells}) == 4 and len({c.tuning_id() for c in cells}) == 1
    assert {(c.hparams.learning_rate, c.strategy.params["r"]) for c in cells} == {(1e-3, 2), (1e-3, 4), (2e-3, 2), (2e-3, 4)}
    bad = [{"name": "lora", "kind": "lora", "sweep": {"r": [4, 0]}}]
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"sweep point r=0.*'r' must be positive"):
        load_suite(str(write_suite(tmp_path, [bert_dir], data_dir, strategies=bad, name="bad", dataset={"validation_size": 20})))
    with pytest.raises(BenchError, match="a sweep is chosen on validation data, and the dataset has none"):
        load_suite(str(write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, name="noval")))


def test_sweep_seeds_first_runs_later_seeds_for_the_chosen_point_only(tmp_path, bert_dir, data_dir):
    strategies = [{"name": "full", "kind": "full", "sweep": {"learning_rate": [1e-5, 3e-3]}}]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, seeds=[0, 1, 2], epochs=4,
                        sweep_seeds="first", dataset={"validation_size": 20})
    output = tmp_path / "r.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    rows = read_results(output)
    first = [r for r in rows if r["seed"] == 0]
    assert len(first) == 2 and len(rows) == 4  # 2 points on seed 0, then the chosen one on seeds 1 and 2
    chosen = max(first, key=lambda r: r["validation_accuracy"])
    assert {r["config_id"] for r in rows if r["seed"] != 0} == {chosen["config_id"]}
    chosen_before = chosen["config_id"]
    assert main(["--suite", str(suite), "--output", str(output)]) == 0  # resume: nothing left to run
    assert len(read_results(output)) == 4

    # Widened (the report's advice when a choice lands at an edge): the points already run keep
    # their rows and join the new point in one sweep; the later seeds follow the new choice.
    strategies[0]["sweep"]["learning_rate"].append(3e-4)
    widened = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, seeds=[0, 1, 2], epochs=4,
                          sweep_seeds="first", dataset={"validation_size": 20})
    assert main(["--suite", str(widened), "--output", str(output)]) == 0
    rows = read_results(output)
    assert len({r["tuning_id"] for r in rows}) == 1 and len({r["run_id"] for r in rows}) == len(rows)
    first = [r for r in rows if r["seed"] == 0]
    chosen = max(first, key=lambda r: r["validation_accuracy"])  # ties: max keeps the earliest, as the protocol does
    assert len(first) == 3 and {r["seed"] for r in rows if r["config_id"] == chosen["config_id"]} == {0, 1, 2}
    assert len(rows) == (5 if chosen["config_id"] == chosen_before else 7)  # the new point, and its later seeds if chosen


def test_select_best_keeps_the_best_validation_epoch(tmp_path, bert_dir, data_dir):
    """Three runs that differ only in what they keep: select: last; select: best; select: best
    with patience 1 (stopped one epoch after its best). The two select: best runs keep the same
    epoch's weights, so they predict the test split identically; the last epoch differs."""
    strategies = [
        {"name": "last", "kind": "full"},
        {"name": "best", "kind": "full", "select": "best"},
        {"name": "stopped", "kind": "full", "select": "best", "patience": 1},
    ]
    # a learning rate high enough that validation accuracy does not rise every epoch
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, epochs=6, learning_rate=3e-3,
                        dataset={"validation_size": 30})
    output = tmp_path / "r.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    rows = {r["strategy"]: r for r in read_results(output)}
    best, stopped, last = rows["best"], rows["stopped"], rows["last"]
    history = best["history"]
    accuracies = [h["validation_accuracy"] for h in history]
    assert best["selected_epoch"] == accuracies.index(max(accuracies)) + 1
    assert best["validation_accuracy"] == pytest.approx(max(accuracies), abs=1e-6)
    assert last["selected_epoch"] == 6 and last["epochs_run"] == 6
    assert best["selected_epoch"] < 6, "the constructed run must peak before its last epoch"
    assert stopped["selected_epoch"] <= best["selected_epoch"] and stopped["epochs_run"] < 6

    def predictions(row):
        return (tmp_path / row["predictions_file"]).read_text()

    if stopped["selected_epoch"] == best["selected_epoch"]:
        assert predictions(stopped) == predictions(best)  # restored weights = the weights at that epoch
    assert best["test_accuracy"] != last["test_accuracy"] or predictions(best) != predictions(last)


def test_frozen_features_are_computed_once_for_every_head_cell(tmp_path, bert_dir, data_dir):
    """Four head cells (2 learning rates x 2 seeds) run the backbone as often as one cell does."""
    from transformers import BertModel

    passes = []

    def count(module, args, output):
        if isinstance(module, BertModel):
            passes.append(1)

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        one = [{"name": "head", "kind": "head", "pooling": "mean"}]
        swept = [{"name": "head", "kind": "head", "pooling": "mean", "sweep": {"learning_rate": [1e-3, 1e-2]}}]
        counts = []
        for name, strategies, seeds in (("one", one, [0]), ("four", swept, [0, 1])):
            passes.clear()
            # serving off: it runs each trained model, backbone included, once per run by design
            suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, seeds=seeds, name=name,
                                dataset={"validation_size": 20}, serving={"measure": False})
            assert main(["--suite", str(suite), "--output", str(tmp_path / f"{name}.csv")]) == 0
            counts.append(len(passes))
    finally:
        handle.remove()
    assert counts[0] > 0 and counts[1] == counts[0]
    rows = read_results(tmp_path / "four.csv")
    built = [r for r in rows if r["cache_seconds"] > 0]
    assert len(built) == 1 and built[0] is rows[0]  # the first cell computed them, and is charged for them
    assert all(r["cache_seconds"] == 0 and r["reused_cache_seconds"] > 0 for r in rows[1:])


def test_device_kind_is_part_of_the_run_id(tmp_path, bert_dir, data_dir):
    suite = load_suite(str(write_suite(tmp_path, [bert_dir], data_dir)))
    cpu, cuda = suite.cells(1, "no", "cpu")[0], suite.cells(1, "no", "cuda")[0]
    assert cpu.run_id() != cuda.run_id() and cpu.config_id() != cuda.config_id()
    assert "device_kind" not in cpu.config()  # CPU ids stay as before device kinds were hashed


def test_typed_rows(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir, dataset={"validation_size": 20})
    output = tmp_path / "r.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    (row,) = read_results(output)
    assert row["status"] == "ok" and row["seed"] == 0 and isinstance(row["test_accuracy"], float)
    assert row["degenerate"] in (True, False) and row["sweep_point"] == {} and json.dumps(row["history"])
