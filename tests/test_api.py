"""The Python API (bench/api.py): a suite run from a dict returns its rows as a DataFrame, a
rerun finds them done, bad input raises BenchError, reports load as one row per run, and the
decision's objects (recommendation, tables, the winner's exported folder) are reachable and
agree with the report the command line writes."""

import logging.handlers
from pathlib import Path

import pandas as pd
import pytest

import bench
from bench.errors import BenchError

STRATEGIES = [{"name": "full", "kind": "full", "epochs": 15}, {"name": "lora", "kind": "lora", "r": 4, "learning_rate": 1e-2, "epochs": 15},
              {"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2, "epochs": 15}]


def suite_dict(bert_dir, data_dir, **dataset):
    return {
        "name": "api",
        "dataset": {"data_dir": str(data_dir), "validation_size": 16, "label_names": ["negative", "positive"], **dataset},
        "checkpoints": [str(bert_dir)],
        "defaults": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_length": 16, "seeds": [0, 1], "mixed_precision": "no"},
        "strategies": STRATEGIES,
    }


@pytest.fixture(scope="module")
def ran(tmp_path_factory, bert_dir, data_dir):
    output = tmp_path_factory.mktemp("api") / "api.csv"
    rows = bench.run_suite(suite_dict(bert_dir, data_dir), output=output, save=True, serving=False)
    return output, rows


def test_run_suite_from_a_dict_returns_one_typed_row_per_run_and_a_rerun_runs_nothing(ran, bert_dir, data_dir, capsys):
    output, rows = ran
    assert isinstance(rows, pd.DataFrame) and len(rows) == 6
    assert sorted(zip(rows["strategy"], rows["seed"])) == [("full", 0), ("full", 1), ("head", 0), ("head", 1), ("lora", 0), ("lora", 1)]
    assert (rows["status"] == "ok").all() and rows["test_accuracy"].dtype == float
    assert isinstance(rows["history"][0], list) and (rows["serving_form"] == "").all()  # serving=False
    capsys.readouterr()
    mine = logging.handlers.BufferingHandler(capacity=100)  # a user's own handler on the launch's logger
    logging.getLogger("bench").addHandler(mine)
    try:
        again = bench.run_suite(suite_dict(bert_dir, data_dir), output=output, save=True, serving=False)
    finally:
        logging.getLogger("bench").removeHandler(mine)
    assert "6 of 6 runs already have an ok row" in capsys.readouterr().out
    assert any("6 of 6 runs already have an ok row" in record.getMessage() for record in mine.buffer)
    pd.testing.assert_frame_equal(again.sort_values("run_id").reset_index(drop=True), rows.sort_values("run_id").reset_index(drop=True))


def test_bad_input_raises_benchError_and_unknown_keywords_raise_typeerror(tmp_path, bert_dir, data_dir):
    with pytest.raises(BenchError, match="unknown key 'colour'"):
        bench.run_suite({**suite_dict(bert_dir, data_dir), "colour": "red"}, output=tmp_path / "x.csv")
    with pytest.raises(BenchError, match="--epochs must be positive"):
        bench.run_suite(suite_dict(bert_dir, data_dir), output=tmp_path / "x.csv", epochs=0)
    with pytest.raises(TypeError, match="unexpected keyword 'epoch'"):
        bench.run_suite(suite_dict(bert_dir, data_dir), epoch=1)
    assert not (tmp_path / "x.csv").exists()


def test_load_results_gives_one_row_per_run_across_reports(ran, tmp_path):
    output, rows = ran
    lines = output.read_text().splitlines()
    shard = tmp_path / "shard.csv"
    shard.write_text("\n".join([lines[0], lines[1]]) + "\n")  # the same first run again, as a second report holds it
    loaded = bench.load_results(output, shard)
    assert len(loaded) == 6 and set(loaded["run_id"]) == set(rows["run_id"])
    assert all(str(p).startswith("/") for p in loaded["saved_model"])


def test_the_decision_is_reachable_from_python_and_its_winner_loads_in_a_pipeline(ran, tmp_path):
    from transformers import pipeline

    from bench.document.report import main as report_main

    output, _ = ran
    decision = bench.decide(output)
    assert decision.recommended.label in ("full", "lora", "head") and decision.why.startswith(f"**{decision.recommended.label}**")
    table = decision.table()
    assert list(table["configuration"]) == [c.label for c in decision.configs] and table["recommended"].sum() == 1
    assert table.loc[table["best"], "test_accuracy"].item() == max(table["test_accuracy"])
    significance = decision.significance()
    assert len(significance) == 2 and significance["p_holm"].between(0, 1).all()
    assert report_main([str(output)]) == 0  # the command line's report says the same
    assert decision.why in (output.parent / "api.report.md").read_text()

    classify = pipeline("text-classification", model=decision.model_folder(), trust_remote_code=True)  # the README's lines
    answer = classify("a wonderful and superb film")[0]
    assert answer["label"] in ("negative", "positive") and 0.5 <= answer["score"] <= 1
    for config in decision.configs:
        assert (Path(decision.model_folder(config)) / "config.json").is_file()  # lora, head: their merged/
