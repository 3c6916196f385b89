"""Resume and safe appends, with real processes: a rerun skips what is done, a kill -9 at any
moment loses no finished row and duplicates none, and concurrent writers lose nothing."""

import csv
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, run_cli, write_suite

from bench.results.store import append_row, read_rows

STRATEGIES = [
    {"name": "full", "kind": "full"},
    {"name": "top1", "kind": "freeze", "top": 1},
    {"name": "head", "kind": "head", "hidden": [8]},
    {"name": "lora", "kind": "lora"},
]


def test_a_rerun_skips_cells_already_ok_and_retries_the_rest(tmp_path, bert_dir, data_dir, capsys):
    from bench.run import main

    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES[:2])
    output = tmp_path / "out.csv"
    append_row(output, {"suite": "tiny", "run_id": "ffffffffffff", "status": "failed"})  # another run's row
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    first = output.read_bytes()
    capsys.readouterr()
    assert main(["--suite", str(suite), "--output", str(output)]) == 0
    assert "2 of 2 runs already have an ok row" in capsys.readouterr().out
    assert output.read_bytes() == first  # nothing trained, nothing written


def test_kill_9_then_rerun_loses_no_row_and_duplicates_none(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES, epochs=3)
    output = tmp_path / "out.csv"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(output)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while len(read_rows(output)) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)  # mid-suite: after the first row, during a later run
    process.wait()
    killed_rows = read_rows(output)
    assert 1 <= len(killed_rows) < len(STRATEGIES)

    result = run_cli("--suite", suite, "--output", output)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_rows(output)
    assert [r["strategy"] for r in rows[: len(killed_rows)]] == [r["strategy"] for r in killed_rows]  # kept as they were
    assert sorted(r["strategy"] for r in rows) == sorted(s["name"] for s in STRATEGIES)  # each once
    assert all(r["status"] == "ok" for r in rows)
    assert f"{len(killed_rows)} of {len(STRATEGIES)} runs already have an ok row" in result.stdout


WRITER = """
import sys
sys.path.insert(0, {root!r})
from pathlib import Path
from bench.results.store import append_row
for i in range({count}):
    append_row(Path({path!r}), {{"suite": "s", "run_id": f"{{sys.argv[1]}}-{{i}}", "status": "ok", "error": "x" * 2000}})
"""


def test_concurrent_appends_lose_nothing_and_interleave_nothing(tmp_path):
    path = tmp_path / "shared.csv"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), count=150, path=str(path)))
    writers = [subprocess.Popen([sys.executable, str(script), name]) for name in ("a", "b", "c")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0]
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["run_id"] for r in rows) == sorted(f"{n}-{i}" for n in "abc" for i in range(150))
    assert all(r["error"] == "x" * 2000 and r["status"] == "ok" for r in rows)  # no torn or mixed lines


def test_sigterm_stops_cleanly_and_a_rerun_finishes_the_suite(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES, epochs=3)
    output = tmp_path / "out.csv"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--suite", str(suite), "--output", str(output)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(read_rows(output)) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # what SLURM sends before it kills a job
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    rows = read_rows(output)
    assert rows and all(r["status"] == "ok" for r in rows)  # the run in flight left no row
    assert run_cli("--suite", suite, "--output", output).returncode == 0
    assert sorted(r["strategy"] for r in read_rows(output)) == sorted(s["name"] for s in STRATEGIES)


def test_two_shards_merged_hold_exactly_the_unsharded_suites_runs(tmp_path, bert_dir, data_dir):
    from bench.results.merge import main as merge_main
    from bench.run import main

    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=STRATEGIES[:3], seeds=[0, 1])
    assert main(["--suite", str(suite), "--output", str(tmp_path / "whole.csv")]) == 0
    for index in (1, 2):
        assert main(["--suite", str(suite), "--output", str(tmp_path / f"shard{index}.csv"), "--shard", f"{index}/2"]) == 0
    shard_ids = [{r["run_id"] for r in read_rows(tmp_path / f"shard{i}.csv")} for i in (1, 2)]
    assert shard_ids[0] and shard_ids[1] and not shard_ids[0] & shard_ids[1]
    merged = tmp_path / "merged" / "all.csv"
    assert merge_main([str(tmp_path / "shard1.csv"), str(tmp_path / "shard2.csv"), str(tmp_path / "shard1.csv"), "--output", str(merged)]) == 0
    rows = read_rows(merged)
    assert sorted(r["run_id"] for r in rows) == sorted(r["run_id"] for r in read_rows(tmp_path / "whole.csv"))  # once each
    assert all((merged.parent / r["predictions_file"]).is_file() for r in rows)
    assert merge_main([str(tmp_path / "shard1.csv"), "--output", str(merged)]) == 2  # never overwrites


def test_merge_refuses_reports_of_different_suites(tmp_path, capsys):
    from bench.results.merge import main as merge_main

    append_row(tmp_path / "a.csv", {"suite": "a", "run_id": "1", "status": "ok"})
    append_row(tmp_path / "b.csv", {"suite": "b", "run_id": "2", "status": "ok"})
    assert merge_main([str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--output", str(tmp_path / "m.csv")]) == 2
    assert "different suites" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()


def test_a_bad_shard_is_one_error_line(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    result = run_cli("--suite", suite, "--shard", "3/2")
    assert result.returncode == 2 and "--shard must be I/N" in result.stderr
