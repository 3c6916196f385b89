"""scale/slurm_shards.sbatch on a real SLURM cluster (scale/local_slurm.sh stands one up on this
machine; .ci/run does so when it runs as root): a job array over 2 shards of a suite given by
path, merged, holds exactly the unsharded suite's runs; a task preempted with SIGTERM and
resubmitted loses nothing and duplicates nothing. Skipped where `sbatch` is not on the PATH."""

import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import ROOT, write_suite

from bench.results.merge import main as merge
from bench.results.store import read_rows
from bench.suite.load import load_suite

pytestmark = pytest.mark.skipif(shutil.which("sbatch") is None,
                                reason="sbatch not on the PATH (scale/local_slurm.sh starts a one-node cluster, as root)")


def _cluster_up() -> bool:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and any(state in ("idle", "mixed") for state in result.stdout.split())


def sbatch(reports, logs, *args, wait=True) -> str:
    """Submit scale/slurm_shards.sbatch as a user would, from the project root; returns the job id."""
    command = ["sbatch", "--parsable", "--gres=none", "--cpus-per-task=1", f"--output={logs}/%A_%a.out",
               *(["--wait"] if wait else []), *args]
    env = {**os.environ, "BENCH_VENV": sys.prefix, "BENCH_REPORTS": str(reports)}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode in (0, 1), result.stderr  # --wait: 1 when a task failed (the preempted one)
    return result.stdout.strip().split(";")[0]


def test_a_job_array_of_shards_merges_into_the_unsharded_suite_and_survives_preemption(tmp_path, bert_dir, data_dir):
    if not _cluster_up():
        pytest.skip("sbatch is here but no SLURM node is idle (run scale/local_slurm.sh as root)")
    script = str(ROOT / "scale" / "slurm_shards.sbatch")
    strategies = [{"name": "full", "kind": "full"}, {"name": "head", "kind": "head", "hidden": [8]}]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, seeds=[0, 1], name="by-path")
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    logs.mkdir()
    sbatch(reports, logs, "--array=1-2", script, str(suite))
    shards = sorted(reports.glob("by-path-shard*-of-2.csv"))
    assert [p.name for p in shards] == ["by-path-shard1-of-2.csv", "by-path-shard2-of-2.csv"]
    assert merge([*map(str, shards), "--output", str(tmp_path / "merged.csv")]) == 0
    rows = read_rows(tmp_path / "merged.csv")
    expected = {c.run_id() for c in load_suite(str(suite)).cells(1, "no", "cpu")}
    assert sorted(r["run_id"] for r in rows) == sorted(expected) and {r["status"] for r in rows} == {"ok"}
    log = (logs / next(p.name for p in logs.iterdir())).read_text()
    assert log.count("\r") < 20, "a job log holds lines, not a redraw per step"

    # Preemption: task 1 of 2 gets SIGTERM mid-run, as SLURM sends before it kills a job; it
    # writes no row for the run in flight, and resubmitted, it finishes its shard.
    slow = [{"name": "slow", "kind": "full", "epochs": 15}, {"name": "quick", "kind": "full"}]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=slow, name="preempted")
    job = sbatch(reports, logs, "--array=1-2", script, str(suite), wait=False)
    shard1 = reports / "preempted-shard1-of-2.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        out = logs / f"{job}_1.out"
        if out.exists() and "| seed 0" in out.read_text(errors="replace"):
            break
        time.sleep(0.2)
    time.sleep(2)  # into training
    subprocess.run(["scancel", "--full", "--signal=TERM", f"{job}_1"], check=True)
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    assert not shard1.exists() or read_rows(shard1) == []
    assert "stopped by SIGTERM" in (logs / f"{job}_1.out").read_text()
    sbatch(reports, logs, "--array=1", script, str(suite), "2")  # resubmitted: the shard count named
    rows = read_rows(shard1) + read_rows(reports / "preempted-shard2-of-2.csv")
    assert sorted(r["strategy"] for r in rows) == ["quick", "slow"] and {r["status"] for r in rows} == {"ok"}
