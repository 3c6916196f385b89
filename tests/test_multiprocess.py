"""Two real CPU processes through `accelerate launch`: one row per run, the exact eval set,
and the same evaluation a single process gives."""

import csv
import os
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, rounding_tolerance, write_suite
from transformers import AutoConfig

from bench.run import main

STRATEGIES = [
    {"name": "learn", "kind": "full", "epochs": 3},
    # Only the new head, at a learning rate too small to change it: the evaluated model is
    # the seed-initialised one, so 1 and 2 processes must score it identically.
    {"name": "still", "kind": "freeze", "learning_rate": 1e-12},
    # cached frozen outputs: each process computes its share, all get the whole cache
    {"name": "cached", "kind": "freeze", "top": 1, "cache_frozen": True},
    {"name": "head", "kind": "head", "hidden": [8]},
]


def launch_two_cpu_processes(*args, timeout=600):
    # The command ../shared/NOTES.md found to really start 2 connected CPU processes;
    # `--cpu --num_processes 2` silently starts one.
    env = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ROOT / "accelerate_config.yaml"),
        "--num_processes", "2",
        "--main_process_port", str(_free_port()),  # another test process may be launching two beside this one
        str(ROOT / "bench" / "run.py"), *map(str, args),
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


@pytest.mark.slow
def test_two_processes_give_one_row_and_score_every_example_once(tmp_path, bert_dir, data_dir):
    # with a validation split: every epoch is validated, each process its share, gathered exactly
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES, dataset={"validation_size": 21},
                        tracking={"every_steps": 2})
    two = tmp_path / "two" / "report.csv"
    two.parent.mkdir()
    result = launch_two_cpu_processes("--suite", suite, "--output", two, "--log-with", "tensorboard")
    assert result.returncode == 0, result.stderr[-3000:]
    # the launch's lines (the `bench` logger) once, from the main process, not once per process
    assert result.stdout.count("2 process(es) on cpu") == 1 and result.stdout.count("appended to") == len(STRATEGIES)
    # trackers: the main process alone writes, the loss reduced over both processes every 2 steps
    learn = two.parent / "report.tracking" / "tensorboard" / bert_dir.name / "learn" / "seed0"
    assert len(list(learn.glob("events.out.tfevents.*"))) == 1
    from test_tracking import scalars

    assert [step for step, _ in scalars(learn)["train/loss"]] == [2, 4, 6, 8, 10, 12, 14]  # 5 steps an epoch x 3
    one = tmp_path / "one" / "report.csv"
    one.parent.mkdir()
    assert main(["--suite", str(suite), "--output", str(one)]) == 0

    with open(two) as f:
        rows = list(csv.DictReader(f))
    assert [r["strategy"] for r in rows] == [s["name"] for s in STRATEGIES]  # one row per run, not one per process
    with open(one) as f:
        single = {r["strategy"]: r for r in csv.DictReader(f)}
    for row in rows:
        assert row["status"] == "ok"
        assert (row["num_processes"], row["global_batch_size"]) == ("2", "16")
        assert (row["train_examples"], row["validation_examples"], row["test_examples"]) == ("75", "21", "37")
        predictions = pd.read_csv(two.parent / row["predictions_file"])
        # 37 examples over 2 processes: the sampler pads to 38, gather_for_metrics drops the copy
        assert sorted(predictions["idx"]) == list(range(37))
        assert (predictions["label"] == predictions["prediction"]).mean() == pytest.approx(float(row["test_accuracy"]), abs=1e-6)
        # global throughput: all examples over the shared wall time
        assert float(row["train_samples_per_s"]) == pytest.approx(75 * int(row["epochs"]) / float(row["train_seconds"]), rel=1e-3)
        assert row["run_id"] != single[row["strategy"]]["run_id"]  # different global batch, different config

    still = next(r for r in rows if r["strategy"] == "still")
    still_two = pd.read_csv(two.parent / still["predictions_file"])
    still_one = pd.read_csv(one.parent / single["still"]["predictions_file"])
    assert still_two["prediction"].tolist() == still_one["prediction"].tolist()
    assert float(still["test_accuracy"]) == float(single["still"]["test_accuracy"])
    assert float(still["validation_accuracy"]) == float(single["still"]["validation_accuracy"])  # 21 examples, 2 processes
    # Each process pads its own batches (other shapes, other sums) and the means are summed in
    # another order: not bit-equal. A cross-entropy moves by at most twice what a logit moves.
    logits = rounding_tolerance(AutoConfig.from_pretrained(bert_dir), 32)["atol"]
    assert float(still["test_loss"]) == pytest.approx(float(single["still"]["test_loss"]), abs=2 * logits)


def launch_two_machines_on_loopback(*args, timeout=600):
    """scale/accelerate_multinode.yaml as two nodes would start it, here two "machines" on the
    loopback address, each pinned to its own core (one thread each, as one machine's two
    processes get on two cores)."""
    port = _free_port()
    env = {**os.environ, "ACCELERATE_USE_CPU": "1"}
    cores = sorted(os.sched_getaffinity(0))
    processes = []
    for rank in (0, 1):
        command = [
            sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(ROOT / "scale" / "accelerate_multinode.yaml"),
            "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
            "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
            str(ROOT / "bench" / "run.py"), *map(str, args),
        ]
        core = {cores[rank % len(cores)]}
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                          cwd=ROOT, preexec_fn=lambda core=core: os.sched_setaffinity(0, core)))  # noqa: PLW1509
    outputs = [p.communicate(timeout=timeout)[0] for p in processes]
    return [p.returncode for p in processes], outputs


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two single-core machines need two cores")
def test_two_machines_on_loopback_give_the_rows_of_two_processes_on_one(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES[:1] + STRATEGIES[3:],
                        dataset={"validation_size": 21})
    nodes = tmp_path / "nodes.csv"
    codes, outputs = launch_two_machines_on_loopback("--suite", suite, "--output", nodes)
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    one_machine = tmp_path / "one-machine.csv"
    result = launch_two_cpu_processes("--suite", suite, "--output", one_machine)
    assert result.returncode == 0, result.stderr[-3000:]
    same = ("run_id", "status", "num_processes", "global_batch_size", "device", "train_loss", "validation_loss",
            "validation_accuracy", "test_loss", "test_accuracy")
    with open(nodes) as f, open(one_machine) as g:
        got, expected = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert len(got) == len(expected) == 2  # one row per run: only the main process of machine 0 writes
    assert [{k: r[k] for k in same} for r in got] == [{k: r[k] for k in same} for r in expected]
    assert {r["status"] for r in got} == {"ok"} and {r["num_processes"] for r in got} == {"2"}
