"""Experiment trackers (bench/train/tracking.py) through accelerate's tracker classes, read back with
each library's own reader: TensorBoard's EventAccumulator and MLflow's MlflowClient. One tracker
run per cell, the configuration as hyperparameters, the training loss and learning rate per
logged step, validation per epoch, the row's figures at the end."""

import pytest
from conftest import write_suite

from bench.results.store import read_results
from bench.run import main

STRATEGIES = [{"name": "full", "kind": "full"}, {"name": "lora", "kind": "lora", "r": 4, "sweep": {"learning_rate": [1e-3, 1e-2]}}]


def tracked_suite(tmp_path, bert_dir, data_dir, tracking=None):
    # 96 - 16 validation = 80 train examples at batch 8: 10 steps an epoch, 20 over 2 epochs
    return write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES, epochs=2, dataset={"validation_size": 16},
                       serving={"measure": False}, tracking=tracking)


def scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_gets_one_run_per_cell_with_its_curves(tmp_path, bert_dir, data_dir):
    pytest.importorskip("tensorboard")
    suite = tracked_suite(tmp_path, bert_dir, data_dir)
    output = tmp_path / "tracked.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--log-with", "tensorboard"]) == 0
    rows = read_results(output)
    root = tmp_path / "tracked.tracking" / "tensorboard" / bert_dir.name
    runs = sorted(str(p.relative_to(root)) for p in root.glob("**/seed0"))
    assert runs == ["full/seed0", "lora/learning_rate=0.001/seed0", "lora/learning_rate=0.01/seed0"]
    for row in rows:
        name = "full" if row["strategy"] == "full" else f"lora/learning_rate={row['sweep_point']['learning_rate']}"
        curves = scalars(root / name / "seed0")
        assert [step for step, _ in curves["train/loss"]] == [10, 20]  # every 10 steps
        rates = [value for _, value in curves["train/learning_rate"]]
        assert rates[0] > rates[1] >= 0 and rates[0] < row["learning_rate"]  # linear decay from the peak
        assert [step for step, _ in curves["validation/accuracy"]] == [10, 20]  # each epoch
        history = row["history"]
        assert [round(v, 5) for _, v in curves["validation/accuracy"]] == [round(e["validation_accuracy"], 5) for e in history]
        assert curves["final/test_accuracy"] == [(20, pytest.approx(row["test_accuracy"]))]
        assert curves["final/ok"][0][1] == 1.0
    hparams = list((root / "full" / "seed0").glob("*/hparams.yml"))  # accelerate's copy of the hyperparameters
    assert hparams and f"run_id: {rows[0]['run_id']}" in hparams[0].read_text()


def test_mlflow_gets_one_run_per_cell_in_a_local_store(tmp_path, bert_dir, data_dir, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    logs = tmp_path / "logs"
    suite = tracked_suite(tmp_path, bert_dir, data_dir, tracking={"log_with": ["mlflow"], "every_steps": 5, "dir": str(logs)})
    output = tmp_path / "ml.csv"
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    rows = {r["run_id"]: r for r in read_results(output)}
    client = MlflowClient(tracking_uri=f"sqlite:///{logs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.tags["run_id"] for run in runs) == sorted(rows)
    for run in runs:
        row = rows[run.data.tags["run_id"]]
        assert run.info.status == "FINISHED" and run.info.run_name.endswith("/seed0")
        assert run.data.params["strategy"] == row["strategy"] and float(run.data.params["hparams/learning_rate"]) == row["learning_rate"]
        losses = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in losses] == [5, 10, 15, 20]
        assert run.data.metrics["final/test_accuracy"] == pytest.approx(row["test_accuracy"])
        assert run.data.metrics["validation/accuracy"] == pytest.approx(row["history"][-1]["validation_accuracy"])


def test_an_unknown_or_missing_tracker_is_one_line_before_anything_runs(tmp_path, bert_dir, data_dir, capsys):
    suite = tracked_suite(tmp_path, bert_dir, data_dir)
    output = tmp_path / "none.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--log-with", "tensorbored"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown tracker 'tensorbored'; accelerate knows: aim, ") and len(err.splitlines()) == 1
    try:
        import wandb  # noqa: F401
    except ImportError:
        assert main(["--suite", str(suite), "--output", str(output), "--log-with", "wandb"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "error: tracker 'wandb' needs its library, which is not installed: pip install wandb"
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    assert main(["--suite", str(suite), "--output", str(output), "--log-with", "tensorboard", "--log-dir", str(in_the_way)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the tracking folder {in_the_way} is a file") and len(err.splitlines()) == 1
    assert not output.exists()
