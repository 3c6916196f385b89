"""Resume and safe appends, with real processes: a rerun skips what is done, a kill -9 at any
moment loses no finished row and duplicates none, and concurrent writers lose nothing."""

import csv
import os
import signal
import subprocess
import sys
import time

from bench.report import append_row, read_rows
from conftest import ROOT, run_cli, write_suite

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
from bench.report import append_row
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
