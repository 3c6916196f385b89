"""Cell-parallel runs (`--workers N`, bench/launch/pool.py) with real worker processes: the rows are
the sequential path's rows, a worker killed mid-run leaves a failed row and the suite goes on,
SIGTERM stops every worker without a row for the runs in flight, and a rerun resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, a_workers_cores, run_cli, write_suite

from bench.launch.pool import slots_for
from bench.results.store import read_results, read_rows

STRATEGIES = [
    {"name": "full", "kind": "full"},
    {"name": "head", "kind": "head", "hidden": [8], "sweep": {"learning_rate": [1e-3, 3e-3]}},
    {"name": "lora", "kind": "lora"},
]
SAME = ("run_id", "config_id", "tuning_id", "train_loss", "validation_loss", "validation_accuracy", "test_loss",
        "test_accuracy", "global_batch_size", "selected_epoch")

needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two CPU cores")


@needs_two_cores
def test_two_workers_write_the_rows_the_sequential_run_writes(tmp_path, bert_dir, data_dir, capsys):
    from bench.run import main

    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES, seeds=[0, 1], sweep_seeds="first",
                        dataset={"validation_size": 20})
    sequential = tmp_path / "sequential.csv"
    with a_workers_cores(2):  # a worker's threads: the same sums in the same order
        assert main(["--suite", str(suite), "--output", str(sequential)]) == 0
    parallel = tmp_path / "parallel.csv"
    result = run_cli("--suite", suite, "--output", parallel, "--workers", "2", "--log-with", "tensorboard")
    assert result.returncode == 0, result.stderr[-3000:]
    # the workers got --log-with: one TensorBoard run per cell, whichever worker ran it
    runs = {p.parent for p in (tmp_path / "parallel.tracking" / "tensorboard").glob("**/seed*/events.out.tfevents.*")}
    assert len(runs) == 7
    expected = {r["run_id"]: r for r in read_results(sequential)}
    got = {r["run_id"]: r for r in read_results(parallel)}
    assert len(got) == len(read_rows(parallel)) == len(expected) == 7  # full, lora x 2 seeds; head: 2 points, then the chosen one on seed 1
    for run_id, row in expected.items():
        assert {k: got[run_id][k] for k in SAME} == {k: row[k] for k in SAME}
        assert (tmp_path / got[run_id]["predictions_file"]).read_text() == (tmp_path / row["predictions_file"]).read_text()
    assert {r["device"] for r in got.values()} == {r["device"] for r in expected.values()}
    share = len(slots_for(2, 1)[0].cores)
    assert f"on 2 workers ({share} core(s), {share} core(s))" in result.stdout

    capsys.readouterr()
    before = parallel.read_bytes()
    assert main(["--suite", str(suite), "--output", str(parallel), "--workers", "2"]) == 0  # resume: nothing to run
    assert "7 of 8 runs already have an ok row" in capsys.readouterr().out
    assert parallel.read_bytes() == before


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _start(suite, output, workers: int) -> subprocess.Popen:
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(output),
               "--workers", str(workers)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_training(output, count: int, deadline: float = 300) -> None:
    """Until `count` worker logs show a run under way."""
    logs = output.parent / f"{output.stem}.logs"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        started = [p for p in logs.glob("*.log") if "| seed " in p.read_text(errors="replace")] if logs.exists() else []
        if len(started) >= count:
            time.sleep(1.0)  # into the training loop
            return
        time.sleep(0.1)
    raise AssertionError("no worker started a run")


def test_a_killed_worker_leaves_a_failed_row_and_a_fresh_worker_runs_the_rest(tmp_path, bert_dir, data_dir):
    slow = {"name": "slow", "kind": "full", "epochs": 200}  # long enough to be killed mid-run
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=[slow, STRATEGIES[0]])
    output = tmp_path / "r.csv"
    process = _start(suite, output, workers=1)
    _wait_for_training(output, 1)
    (worker,) = _children(process.pid)
    os.kill(worker, signal.SIGKILL)
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 1, out[-3000:]
    rows = {r["strategy"]: r for r in read_rows(output)}
    assert len(read_rows(output)) == 2
    assert rows["slow"]["status"] == "failed" and "killed by SIGKILL" in rows["slow"]["error"]
    assert rows["slow"]["device"].startswith("cpu ") and rows["slow"]["run_id"] and rows["slow"]["config_id"]
    assert rows["full"]["status"] == "ok"
    assert "FAILED (worker process killed by SIGKILL" in out
    # a log file, not a terminal: the bar of a 10-step run is drawn at its start and end, not per step
    log = (output.parent / "r.logs" / f"{rows['full']['run_id']}.1.log").read_text()
    assert "-> test accuracy" in log and log.count("\r") <= 4 and "Loading weights" not in log


@needs_two_cores
def test_sigterm_stops_every_worker_without_a_row_and_a_rerun_finishes(tmp_path, bert_dir, data_dir):
    slow = [{"name": f"slow{i}", "kind": "full", "epochs": 200} for i in (1, 2)]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=slow + [STRATEGIES[0]])
    output = tmp_path / "r.csv"
    process = _start(suite, output, workers=2)
    _wait_for_training(output, 2)
    workers = _children(process.pid)
    assert len(workers) == 2
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 143, out[-3000:]
    assert not output.exists() or read_rows(output) == []  # the runs in flight wrote nothing
    assert not any(os.path.exists(f"/proc/{pid}") and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" for pid in workers)
    # the rerun, shortened, finishes the suite; each run once
    short = write_suite(tmp_path, [bert_dir], data_dir, strategies=[{**s, "epochs": 1} for s in slow] + [STRATEGIES[0]])
    result = run_cli("--suite", short, "--output", output, "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["strategy"] for r in read_rows(output)) == ["full", "slow1", "slow2"]


def test_impossible_worker_counts_are_one_line(tmp_path, bert_dir, data_dir, capsys):
    from bench.run import main

    suite = write_suite(tmp_path, [bert_dir], data_dir)
    assert main(["--suite", str(suite), "--output", str(tmp_path / "r.csv"), "--workers", "64"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --workers 64 is more than this machine's") and not (tmp_path / "r.csv").exists()
    with pytest.raises(SystemExit):
        main(["--suite", str(suite), "--workers", "0"])
    assert capsys.readouterr().err.strip() == "error: --workers must be positive (see --help)"
