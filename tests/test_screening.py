"""Screening checkpoints before fine-tuning (the suite's `screen:`, bench/launch/screen.py) on
real tiny checkpoints: one whose frozen features carry nothing (its embeddings zeroed, so every
example pools to the same vector) is dropped, with its reason, and trains no run; the screen's
verdicts are kept beside the report and a rerun reads them; the report shows them."""

import os

import pytest
import torch
from conftest import build_checkpoint, write_suite

from bench.results.screening import read_screen, screening_path
from bench.results.store import read_results
from bench.run import main


def dead_checkpoint(folder):
    """A tiny BERT whose embeddings are all zero: every token enters the encoder as the same
    vector, so its pooled features are one constant."""
    from transformers import AutoModelForSequenceClassification

    build_checkpoint(folder, "bert")
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        for name, p in model.bert.embeddings.named_parameters():
            if name.endswith("embeddings.weight"):
                p.zero_()
    model.save_pretrained(folder)
    return folder


def test_a_checkpoint_clearly_apart_is_screened_out_and_trains_nothing(tmp_path, bert_dir, data_dir, capsys):
    dead = dead_checkpoint(tmp_path / "dead")
    suite = write_suite(tmp_path, [bert_dir, dead], data_dir, strategies=[{"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2, "epochs": 30}],
                        serving={"measure": False})
    text = suite.read_text() + "screen: {score: hscore, keep: 1, examples: 64, resamples: 50}\n"
    suite.write_text(text)
    report = tmp_path / "screened.csv"
    assert main(["--suite", str(suite), "--output", str(report)]) == 0, capsys.readouterr().err[-2000:]
    out = capsys.readouterr().out
    assert f"DROPPED {dead}" in out and f"kept    {bert_dir}" in out
    verdicts = {row["checkpoint"]: row for row in read_screen(screening_path(report))}
    assert verdicts[str(dead)]["kept"] is False and "clearly below" in verdicts[str(dead)]["reason"]
    assert verdicts[str(dead)]["score"] < verdicts[str(bert_dir)]["low"]
    assert all(v["seconds"] > 0 and v["examples"] == 64 for v in verdicts.values())
    # every screen scored from the same pass (no validation split here: no probe), the dead checkpoint lowest
    for column in ("logme", "hscore", "hscore_layers"):
        assert verdicts[str(dead)][column] < verdicts[str(bert_dir)][column]
    assert all(v["probe"] is None for v in verdicts.values())
    assert {row["checkpoint"] for row in read_results(report)} == {str(bert_dir)}
    # a rerun reads the verdicts instead of scoring again, and has nothing left to run
    assert main(["--suite", str(suite), "--output", str(report)]) == 0
    again = capsys.readouterr().out
    assert "screening: the verdicts of" in again and "scored" not in again
    assert len(read_results(report)) == 1
    # the report: the recommendation says what the screen did, and a Screening section shows why
    from bench.document.report import main as report_main

    assert report_main([str(report)]) == 0
    md = report.with_name("screened.report.md").read_text()
    assert "1 of 2 checkpoints fine-tuned, dead dropped (see Screening)" in md
    assert "## Screening" in md and "**dropped**" in md and "a ranking needs at least 3" in md and "Scoring took" in md
    # --no-screen: the whole grid, the dropped checkpoint included
    assert main(["--suite", str(suite), "--output", str(report), "--no-screen"]) == 0
    assert {row["checkpoint"] for row in read_results(report)} == {str(bert_dir), str(dead)}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two CPU cores")
def test_a_pool_of_workers_screens_once_before_dispatching(tmp_path, bert_dir, data_dir, capsys):
    """`--workers 2`: the pool's own process screens, and only the kept checkpoint's cells go out."""
    dead = dead_checkpoint(tmp_path / "dead")
    strategies = [{"name": f"head{i}", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2 * i}
                  for i in (1, 2)]
    suite = write_suite(tmp_path, [bert_dir, dead], data_dir, strategies=strategies, serving={"measure": False})
    suite.write_text(suite.read_text() + "screen: {score: hscore, keep: 1, examples: 64, resamples: 50}\n")
    report = tmp_path / "pooled.csv"
    assert main(["--suite", str(suite), "--output", str(report), "--workers", "2"]) == 0, capsys.readouterr().err[-2000:]
    assert f"DROPPED {dead}" in capsys.readouterr().out
    rows = read_results(report)
    assert len(rows) == 2 and {row["checkpoint"] for row in rows} == {str(bert_dir)}
    assert not next(v for v in read_screen(screening_path(report)) if v["checkpoint"] == str(dead))["kept"]


def test_head_runs_train_on_the_screens_features(tmp_path, bert_dir, distilbert_dir, data_dir):
    """The screen's pass is the head runs' feature cache (same examples, chunks and dtype): a
    screened launch's head rows are the unscreened launch's, bit for bit, and its head runs
    computed no train or validation features themselves (the screen's seconds are theirs)."""
    head = [{"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "sweep": {"learning_rate": [1e-3, 1e-2]}}]
    suite = write_suite(tmp_path, [bert_dir, distilbert_dir], data_dir, strategies=head, serving={"measure": False},
                        dataset={"validation_size": 20}, epochs=2)
    suite.write_text(suite.read_text() + "screen: {score: hscore-layers, keep: 2, resamples: 20}\n")
    screened, grid = tmp_path / "screened.csv", tmp_path / "grid.csv"
    assert main(["--suite", str(suite), "--output", str(screened)]) == 0
    assert main(["--suite", str(suite), "--output", str(grid), "--no-screen"]) == 0
    rows, expected = read_results(screened), {r["run_id"]: r for r in read_results(grid)}
    assert len(rows) == len(expected) == 4
    same = ("train_loss", "validation_loss", "validation_accuracy", "test_loss", "test_accuracy", "selected_epoch")

    def figures(row):  # each epoch's figures, not its clocks
        return [{k: v for k, v in epoch.items() if not k.endswith("seconds")} for epoch in row["history"]]

    for row in rows:
        assert {k: row[k] for k in same} == {k: expected[row["run_id"]][k] for k in same}
        assert figures(row) == figures(expected[row["run_id"]])
        assert (tmp_path / row["predictions_file"]).read_text() == (tmp_path / expected[row["run_id"]]["predictions_file"]).read_text()
    first = [rows[0], rows[2]]  # each checkpoint's first head run: in the grid it computed the features, here the screen did
    assert all(r["reused_cache_seconds"] > 0 for r in first)
    assert all(expected[r["run_id"]]["reused_cache_seconds"] is None for r in first)
