"""Successive halving inside sweeps, through real runs at tiny size: a survivor's row is the
un-halved run's row; the rung decisions are the rule's on the un-halved runs' own validation outcomes;
stopped points are charged and never tested; the same rows come out of --workers 2 and out of
a suite killed with SIGKILL and rerun, which repeats no rung; a halved sweep stays in one shard."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml
from conftest import ROOT, a_workers_cores, make_examples, run_cli, write_csv, write_suite
from test_multiprocess import launch_two_cpu_processes

from bench.decision.decide import decide
from bench.decision.selection import RungPoint, charged_device_seconds, rung_decision
from bench.errors import BenchError
from bench.launch.halving import at_rung
from bench.launch.plan import selected_cells
from bench.options import RunOptions
from bench.results.store import read_results, write_rows
from bench.run import main
from bench.suite.load import load_suite

FULL_RATES = [3e-4, 3e-3, 1e-2, 2e-2]
HEAD_RATES = [3e-3, 3e-2]


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """300 train / 60 test reviews: enough for the tiny model to learn within the rungs."""
    folder = tmp_path_factory.mktemp("learnable")
    write_csv(folder / "train.csv", make_examples(300, seed=11))
    write_csv(folder / "test.csv", make_examples(60, seed=12))
    return folder


def halved_suite(folder, bert_dir, data_dir, halving=None, **defaults):
    strategies = [{"name": "full", "kind": "full", "sweep": {"learning_rate": FULL_RATES}},
                  {"name": "head", "kind": "head", "hidden": [16], "pooling": "mean", "sweep": {"learning_rate": HEAD_RATES}}]
    path = write_suite(folder, [bert_dir], data_dir, strategies=strategies, dataset={"validation_size": 40},
                       **{"epochs": 6, "batch_size": 16, **defaults})
    raw = yaml.safe_load(path.read_text())
    raw["halving"] = halving or {"eta": 4, "rungs": [2, 4]}  # the best quarter, and all not clearly worse
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def reports(tmp_path_factory, bert_dir, learnable):
    """The same suite halved (rungs at epochs 2 and 4 of 6) and whole (--no-halving), each on
    the cores a worker of `--workers 2` gets (so with its threads: the pool's rows must equal these)."""
    folder = tmp_path_factory.mktemp("halving")
    suite = halved_suite(folder, bert_dir, learnable)
    with a_workers_cores(2):
        assert main(["--suite", str(suite), "--output", str(folder / "halved.csv")]) == 0
        assert main(["--suite", str(suite), "--output", str(folder / "whole.csv"), "--no-halving"]) == 0
    return suite, folder, read_results(folder / "halved.csv"), read_results(folder / "whole.csv")


def final_rows(rows):
    return {r["run_id"]: r for r in rows if r["status"] != "paused"}


def figures(row):
    keys = ("status", "epochs_run", "train_loss", "validation_loss", "validation_accuracy", "test_loss", "test_accuracy")
    return tuple(row.get(k) for k in keys)


def learning(row):
    """A row's per-epoch history without its clocks."""
    return [{k: v for k, v in epoch.items() if not k.endswith("seconds")} for epoch in row["history"]]


def replayed(whole, strategy, rates, rungs=(2, 4), epochs=6, eta=4, level=0.1):
    """Each rate's last epoch under halving, from the un-halved runs' own per-epoch validation
    outcomes: the rule (`rung_decision`) at each rung, a rung no point learned by moving one epoch on."""
    rows = {r["learning_rate"]: r for r in whole if r["strategy"] == strategy}
    majority = next(iter(rows.values()))["validation_majority_rate"]
    alive, decided, last = list(rates), 0, {}
    for rung in rungs:
        if rung <= decided:
            continue
        if len(alive) == 1:
            break
        at = rung
        while True:
            decision = rung_decision([RungPoint(str(lr), *at_rung(rows[lr], at, "last")) for lr in alive], eta, level, majority)
            if decision.decided or at + 1 >= epochs:
                break
            at += 1
        if not decision.decided:
            break
        decided = at
        last.update({lr: at for lr in alive if str(lr) not in decision.continuing})
        alive = [lr for lr in alive if str(lr) in decision.continuing]
    return {lr: last.get(lr, epochs) for lr in rates}


def test_a_survivor_has_the_row_of_the_same_run_without_halving(reports):
    _, folder, halved, whole = reports
    whole_by_id = {r["run_id"]: r for r in whole}
    survivors = [r for r in halved if r["status"] == "ok"]
    assert {r["strategy"] for r in survivors} == {"full", "head"}  # at least one per sweep
    for row in survivors:
        other = whole_by_id[row["run_id"]]  # the same run_id: halving is not part of a run's identity
        assert figures(row) == figures(other)
        assert learning(row) == learning(other)  # every epoch, its validation outcomes included
        assert (folder / row["predictions_file"]).read_text() == (folder / other["predictions_file"]).read_text()
    assert not (folder / "halved.halving").exists()  # every run's paused states removed when it ended


def test_rungs_decide_as_the_rule_does_on_the_un_halved_runs_validation(reports):
    """Each point's last epoch is what the rule gives on the un-halved runs' own per-epoch
    validation outcomes (a rung no point learned by moves on; points tied at the cut go on)."""
    _, _, halved, whole = reports
    final = {(r["strategy"], r["learning_rate"]): r for r in final_rows(halved).values()}
    for strategy, rates in (("full", FULL_RATES), ("head", HEAD_RATES)):
        expected = replayed(whole, strategy, rates)
        assert {lr: final[strategy, lr]["epochs_run"] for lr in rates} == expected
        assert {lr: final[strategy, lr]["status"] for lr in rates} == {lr: "ok" if e == 6 else "stopped" for lr, e in expected.items()}
    assert any(r["status"] == "stopped" for r in final.values())  # this data has points clearly worse
    # one paused row per point and epoch it paused at: no rung trained twice
    paused = Counter((r["run_id"], r["epochs_run"]) for r in halved if r["status"] == "paused")
    assert set(paused.values()) == {1}


def test_stopped_points_are_charged_to_their_sweep_and_never_tested(reports):
    _, folder, halved, _ = reports
    stopped = [r for r in final_rows(halved).values() if r["status"] == "stopped"]
    for row in stopped:
        assert row.get("test_accuracy") is None and not row.get("predictions_file")
        assert row["validation_accuracy"] is not None and row["train_seconds"] > 0
        assert row["error"].startswith(f"stopped by halving at epoch {row['epochs_run']} of 6: validation")
        assert "clearly worse (McNemar exact, one-sided p" in row["error"]
    decision = decide([folder / "halved.csv"])
    full = next(t for t in decision.tuned if t.chosen.rows[0]["strategy"] == "full")
    full_stopped = [r for r in stopped if r["strategy"] == "full"]
    assert len(full.stopped) == len(full_stopped) and len(full.points) == 4 - len(full_stopped)
    expected = sum(charged_device_seconds(r) for r in final_rows(halved).values() if r["strategy"] == "full")
    assert full.tuning_device_seconds == pytest.approx(expected)
    assert not decision.not_ok  # stopped points are not failures


def test_workers_reach_the_same_rows(reports, tmp_path):
    suite, _, halved, _ = reports
    output = tmp_path / "pool.csv"
    result = run_cli("--suite", suite, "--output", output, "--workers", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    # the same rows, figure for figure: the reference ran with a worker's cores (and threads)
    pooled = {(r["run_id"], r["status"], r["epochs_run"]): r for r in read_results(output)}
    assert set(pooled) == {(r["run_id"], r["status"], r["epochs_run"]) for r in halved}
    for row in halved:
        other = pooled[row["run_id"], row["status"], row["epochs_run"]]
        assert figures(other) == figures(row)
        assert learning(other) == learning(row) and other["device"] == row["device"]


def test_a_killed_suite_reruns_no_rung_and_loses_no_row(reports, tmp_path):
    suite, _, halved, _ = reports
    output = tmp_path / "killed.csv"
    with a_workers_cores(2):  # the threads the reference rows ran with
        killed_and_rerun(suite, output)
    after = read_results(output)
    paused = Counter((r["run_id"], r["epochs_run"]) for r in after if r["status"] == "paused")
    assert set(paused.values()) == {1}  # no rung trained twice
    assert sorted(map(figures, final_rows(after).values())) == sorted(map(figures, final_rows(halved).values()))


def killed_and_rerun(suite, output):
    """The suite killed with SIGKILL once a rung has been decided, then rerun to the end: every
    row written before the kill is still there, in place."""
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(output)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if output.exists() and len(read_results(output)) >= 5:  # 4 points at rung 1, one at rung 2 or stopped
            break
        time.sleep(0.05)
    assert process.poll() is None, "the suite ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = read_results(output)
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    after = read_results(output)
    assert after[: len(before)] == before  # nothing recorded is lost


def test_a_halved_sweep_is_dealt_to_one_shard(tmp_path, bert_dir, data_dir):
    suite = load_suite(str(halved_suite(tmp_path, bert_dir, data_dir)))
    cells = suite.cells()
    shards = [selected_cells(RunOptions(suite="x", shard=f"{i}/2"), cells, suite) for i in (1, 2)]
    assert sorted(len(s) for s in shards) == [2, 4]
    for shard in shards:
        assert len({c.tuning_id() for c in shard}) == 1


def test_halving_refuses_what_it_cannot_do(tmp_path, bert_dir, data_dir):
    with pytest.raises(BenchError, match=r"strategy 'full' at learning_rate=0.0003 trains 6 epoch.*rung must be an epoch before the last"):
        load_suite(str(halved_suite(tmp_path, bert_dir, data_dir, halving={"rungs": [2, 6]})))
    # a sweep may set the epochs too: every point is checked with its own
    strategies = [{"name": "full", "kind": "full", "sweep": {"epochs": [2, 6]}}]
    swept_epochs = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, name="epochs", dataset={"validation_size": 40})
    raw = yaml.safe_load(swept_epochs.read_text())
    raw["halving"] = {"rungs": [2]}
    swept_epochs.write_text(yaml.safe_dump(raw))
    with pytest.raises(BenchError, match="strategy 'full' at epochs=2 trains 2 epoch"):
        load_suite(str(swept_epochs))
    with pytest.raises(BenchError, match="rungs must be epoch counts in increasing order"):
        load_suite(str(halved_suite(tmp_path, bert_dir, data_dir, halving={"rungs": [2, 1]})))
    with pytest.raises(BenchError, match="halving: 'eta' must be at least 2, got 1"):
        load_suite(str(halved_suite(tmp_path, bert_dir, data_dir, halving={"eta": 1})))
    with pytest.raises(BenchError, match=r"stops early \(patience\).*use one of them"):
        load_suite(str(halved_suite(tmp_path, bert_dir, data_dir, select="best", patience=1)))
    forced = run_cli("--suite", halved_suite(tmp_path, bert_dir, data_dir), "--workers", "2", "--force",
                     "--output", tmp_path / "f.csv")
    assert forced.returncode == 2 and "--force with --workers cannot rerun a halved suite" in forced.stderr
    assert not (tmp_path / "f.csv").exists()
    unswept = write_suite(tmp_path, [bert_dir], data_dir, name="unswept", epochs=2)
    raw = yaml.safe_load(unswept.read_text())
    raw["halving"] = {"eta": 2}
    unswept.write_text(yaml.safe_dump(raw))
    result = run_cli("--suite", unswept, "--dry-run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no strategy has a sweep of two or more points, so there is nothing to halve" in result.stderr


def test_the_bill_adds_up_to_the_rows_and_the_full_grid_is_compared_when_present(reports):
    _, folder, halved, whole = reports
    final = final_rows(halved).values()
    decision = decide([folder / "halved.csv"])
    bill = decision.bill
    ok = [r for r in final if r["status"] == "ok"]
    stopped = [r for r in final if r["status"] == "stopped"]
    assert bill.run_seconds == pytest.approx(sum(map(charged_device_seconds, ok)))
    assert bill.stopped_seconds == pytest.approx(sum(map(charged_device_seconds, stopped)))
    assert bill.spent_seconds == pytest.approx(bill.run_seconds + bill.stopped_seconds)  # no screen here
    estimate = sum(map(charged_device_seconds, ok)) + sum(charged_device_seconds(r) / r["epochs_run"] * 6 for r in stopped)
    assert not bill.grid_measured and bill.grid_seconds == pytest.approx(estimate) and bill.grid_runs == 6
    assert 0 < bill.fraction < 1 and "Deciding cost" in decision.why and decision.same_as_grid is None

    # The full grid's rows in the same report (as `--no-halving` into it would add): measured, and compared.
    both = folder / "both.csv"
    write_rows(both, halved + [r for r in whole if r["run_id"] not in {o["run_id"] for o in ok}])
    combined = decide([both])
    grid = decide([folder / "whole.csv"])
    assert combined.bill.grid_measured and combined.choice.config_id == grid.choice.config_id
    assert combined.bill.grid_seconds == pytest.approx(sum(map(charged_device_seconds, ok)) + sum(
        charged_device_seconds(r) for r in whole if r["run_id"] not in {o["run_id"] for o in ok}))
    assert combined.same_as_grid == (decision.choice.config_id == grid.choice.config_id)
    assert combined.against_grid.same == combined.same_as_grid and (combined.same_as_grid or combined.against_grid.test)
    assert combined.bill.spent_seconds == pytest.approx(bill.spent_seconds)  # the budgeted runs, not the grid's


def test_two_processes_pause_and_continue_the_same_run(tmp_path, bert_dir, learnable):
    """accelerate launch with 2 CPU processes: every process saves and loads its own random
    states at the rung; the survivor's row is again the un-halved run's."""
    strategies = [{"name": "full", "kind": "full", "sweep": {"learning_rate": [3e-3, 1e-2]}}]
    suite = write_suite(tmp_path, [bert_dir], learnable, strategies=strategies, epochs=4, batch_size=16,
                        dataset={"validation_size": 40}, serving={"measure": False})
    raw = yaml.safe_load(suite.read_text())
    raw["halving"] = {"eta": 2, "rungs": [2]}
    suite.write_text(yaml.safe_dump(raw, sort_keys=False))
    for name, extra in (("halved", ()), ("whole", ("--no-halving",))):
        result = launch_two_cpu_processes("--suite", suite, "--output", tmp_path / f"{name}.csv", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
    halved, whole = read_results(tmp_path / "halved.csv"), {r["run_id"]: r for r in read_results(tmp_path / "whole.csv")}
    assert {r["run_id"] for r in halved if r["status"] == "paused"} == set(whole)  # each point paused, at least once
    survivors = [r for r in halved if r["status"] == "ok"]
    assert survivors and all(r["num_processes"] == 2 for r in survivors)
    for survivor in survivors:
        assert figures(survivor) == figures(whole[survivor["run_id"]])
        assert learning(survivor) == learning(whole[survivor["run_id"]])
