"""The runner end to end on tiny models: CSV rows, real metrics, failures, bad input."""

import csv
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, build_checkpoint, run_cli, write_suite

from bench.results.columns import NAMES
from bench.results.store import append_row
from bench.run import main


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def learned(tmp_path_factory, bert_dir, data_dir):
    """One suite run, shared by the checks below: full fine-tuning long enough to learn the
    task, and a frozen-backbone head."""
    tmp = tmp_path_factory.mktemp("learned")
    suite = write_suite(
        tmp,
        [bert_dir],
        data_dir,
        strategies=[
            {"name": "full", "kind": "full", "epochs": 15},
            {"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2, "epochs": 2},
        ],
    )
    output = tmp / "reports" / "tiny.csv"
    output.parent.mkdir()
    code = main(["--suite", str(suite), "--output", str(output)])
    return code, output


def test_one_row_per_cell_in_the_documented_schema(learned):
    code, output = learned
    assert code == 0
    with open(output) as f:
        assert next(csv.reader(f)) == NAMES
    rows = read_rows(output)
    assert [r["strategy"] for r in rows] == ["full", "head"]
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert row["num_processes"] == "1" and row["global_batch_size"] == "8"
        assert (row["train_examples"], row["test_examples"]) == ("96", "37")
        assert row["memory_measure"] == "cpu_peak_rss" and float(row["peak_memory_mb"]) > 50
        assert "torch=" in row["versions"] and "peft=" in row["versions"]
        assert re.fullmatch(r"[0-9a-f]{12}", row["run_id"])
        assert row["started_at"] <= row["ended_at"]
    assert len({r["run_id"] for r in rows}) == 2


def test_training_really_learns(learned):
    """The synthetic task is decided by one word; a working loop solves it, a broken one
    (no optimizer step, shuffled labels, wrong loss) stays near 0.5."""
    rows = {r["strategy"]: r for r in read_rows(learned[1])}
    assert float(rows["full"]["test_accuracy"]) >= 0.9
    history = json.loads(rows["full"]["history"])
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2


def test_metrics_agree_with_each_other_and_the_predictions(learned):
    output = learned[1]
    for row in read_rows(output):
        train_loss, test_loss = float(row["train_loss"]), float(row["test_loss"])
        assert float(row["loss_ratio"]) == pytest.approx(train_loss / test_loss, rel=1e-4)
        last = json.loads(row["history"])[-1]  # no validation split here: per epoch only training figures
        assert last["train_loss"] == pytest.approx(train_loss, abs=1e-5) and set(last) == {"epoch", "train_loss", "train_seconds"}
        assert row["selected_epoch"] == row["epochs_run"] == row["epochs"]
        assert row["validation_accuracy"] == "" and row["validation_split"] == "" and row["test_split"] == "test"
        seconds, epochs = float(row["train_seconds"]), int(row["epochs"])
        assert float(row["train_samples_per_s"]) == pytest.approx(96 * epochs / seconds, rel=1e-3)
        assert float(row["test_samples_per_s"]) == pytest.approx(37 / float(row["test_seconds"]), rel=1e-3)  # one test pass
        predictions = pd.read_csv(output.parent / row["predictions_file"])
        assert sorted(predictions["idx"]) == list(range(37))  # every example exactly once
        assert (predictions["label"] == predictions["prediction"]).mean() == pytest.approx(float(row["test_accuracy"]), abs=1e-6)
        assert predictions["loss"].mean() == pytest.approx(test_loss, abs=1e-5)
    counts = {r["strategy"]: int(r["trainable_params"]) for r in read_rows(output)}
    assert counts == {"full": 66_722, "head": 32 * 8 + 8 + 8 * 2 + 2}


def test_rows_are_appended_never_replaced(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    output = tmp_path / "out.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    first = output.read_text()
    assert main(["--suite", str(suite), "--output", str(output), "--force"]) == 0  # rerun what is done
    assert output.read_text().startswith(first)
    rows = read_rows(output)
    assert len(rows) == 2 and rows[0]["run_id"] == rows[1]["run_id"]  # same config, same id
    files = {r["predictions_file"] for r in rows}
    assert len(files) == 2 and all((output.parent / f).is_file() for f in files)


def test_a_run_that_fails_is_recorded_as_failed_and_the_suite_goes_on(tmp_path, bert_dir, data_dir):
    # An embedding table of 10 rows under a tokenizer whose ids go higher: the forward pass fails
    # (nothing the pre-flight can see from the config), the next checkpoint trains.
    small = build_checkpoint(tmp_path / "small-vocab", "bert", vocab_size=10)
    suite = write_suite(tmp_path, [small, bert_dir], data_dir)
    output = tmp_path / "out.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 1
    failed, ok = read_rows(output)
    assert failed["status"] == "failed" and "Error" in failed["error"]
    for column in ("test_accuracy", "train_loss", "loss_ratio", "train_samples_per_s", "predictions_file"):
        assert failed[column] == ""  # no made-up numbers
    assert ok["status"] == "ok" and float(ok["test_accuracy"]) >= 0


def test_dry_run_lists_cells_with_exact_counts_and_trains_nothing(tmp_path, bert_dir, data_dir, capsys):
    suite = write_suite(
        tmp_path,
        [bert_dir],
        data_dir,
        strategies=[{"name": "full", "kind": "full"}, {"name": "lora", "kind": "lora"}],
        seeds=[1, 2],
    )
    output = tmp_path / "out.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if re.match(r"[0-9a-f]{12} ", line)]
    assert len(lines) == 4
    assert sum("66,722" in line and "100.000" in line for line in lines) == 2
    assert sum("2,114" in line and "68,836" in line for line in lines) == 2
    assert not output.exists()


# ----------------------------------------------------------------------------- bad input


def _bad_suites(tmp, bert_dir, data_dir):
    from conftest import write_csv

    no_label = tmp / "no-label"
    write_csv(no_label / "train.csv", [("a", 0)], header=("review", "label"))
    write_csv(no_label / "test.csv", [("a", 0)], header=("review", "label"))
    return {
        "pattern": (write_suite(tmp, [bert_dir], data_dir, name="p", strategies=[{"kind": "freeze", "patterns": ["poolr"]}]),
                    "freeze pattern 'poolr' matches no parameter"),
        "column": (write_suite(tmp, [bert_dir], no_label, name="c"), "has no column 'text'; its columns are review, label"),
        "kind": (write_suite(tmp, [bert_dir], data_dir, name="k", strategies=[{"kind": "adapter"}]), "unknown strategy kind 'adapter'"),
        "hub-checkpoint": (write_suite(tmp, ["no-such-org/no-such-model"], data_dir, name="h"),
                           "cannot load tokenizer of checkpoint 'no-such-org/no-such-model'"),
        "missing-dir": (write_suite(tmp, [bert_dir], tmp / "nowhere", name="d"), "nowhere does not exist"),
        "lora-option": (write_suite(tmp, [bert_dir], data_dir, name="l", strategies=[{"kind": "lora", "dropout": 2}]),
                        "'dropout' must be less than 1.0, got 2"),
    }


@pytest.mark.parametrize("case", ["pattern", "column", "kind", "hub-checkpoint", "missing-dir", "lora-option"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, bert_dir, data_dir, case):
    suite, message = _bad_suites(tmp_path, bert_dir, data_dir)[case]
    output = tmp_path / "kept.csv"
    append_row(output, {"suite": "earlier", "run_id": "0123456789ab", "status": "ok", "test_accuracy": 0.9})
    before = output.read_bytes()
    result = run_cli("--suite", suite, "--output", output, "--epochs=1")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert output.read_bytes() == before
    assert not (tmp_path / "kept.predictions").exists()


def test_unknown_suite_and_hub_dataset_offline():
    result = run_cli("--suite", "nope")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: unknown suite 'nope'; available: freezing, llm, models, mrpc, offline, offline-decoders, offline-models, offline-models-sst2, offline-tuned, sst2, strategies (or pass a path to a .yaml file)"
    ]
    result = run_cli("--suite", "freezing", "--dry-run", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot load tokenizer of checkpoint 'bert-base-cased'" in result.stderr


def test_a_report_with_other_columns_is_refused_and_kept(tmp_path, bert_dir, data_dir):
    output = tmp_path / "old.csv"
    output.write_text("suite,accuracy\nold,0.9\n")
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    result = run_cli("--suite", suite, "--output", output)
    assert result.returncode == 2 and "has columns this version does not write" in result.stderr
    assert output.read_text() == "suite,accuracy\nold,0.9\n"


def test_processes_that_are_not_connected_are_refused(tmp_path, bert_dir, data_dir):
    """What `accelerate launch --multi_gpu --num_processes 2` does on a machine with no GPU:
    each process thinks it is alone. Training twice on all the data must not happen."""
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "-q",
         str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(tmp_path / "x.csv")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode != 0  # the launcher turns our exit code 2 into its own 1
    assert "error: 2 processes were launched but they are not connected" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_the_docs_document_every_column():
    from bench.results.columns import DOCS_COLUMNS, columns_markdown

    readme = (ROOT / "docs" / "columns.md").read_text()
    start, end = DOCS_COLUMNS
    assert readme.split(start, 1)[1].split(end, 1)[0].strip() == columns_markdown(), \
        "docs/columns.md is out of date: python -m bench.results.columns docs/columns.md"
    for column in NAMES:
        assert f"| `{column}` |" in readme, f"docs/columns.md lacks the column {column}"
