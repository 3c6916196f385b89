"""The house's contracts: options declared once reach the command line, the API and a pool's
workers alike; the committed example results keep their run_ids; bad data and a full disk are
one line each, with nothing half-written."""

import contextlib
import csv
import dataclasses
import importlib
import importlib.util
import os
import re
import shutil
import subprocess

import pytest
from conftest import ROOT, SHARED_DATA, a_workers_cores, make_examples, run_cli, write_csv, write_suite

from bench.options import (
    FIELDS,
    RunOptions,
    api_keywords,
    from_argv,
    parser,
    worker_argv,
)
from bench.results.store import read_results

needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="two workers need two CPU cores")


def test_every_option_is_a_flag_an_api_keyword_and_reaches_a_worker():
    flags = {action.dest for action in parser()._actions}
    assert set(FIELDS) <= flags
    assert set(api_keywords()) == {n for n, f in FIELDS.items() if f.metadata["where"] != "command"} - {"run_ids"}
    every = RunOptions(suite="s.yaml", output="o.csv", force=True, save=True, data_dir="d", label_names=["a", "b"],
                       train_size=3, validation_size=2, eval_size=4, epochs=5, seeds=[1, 2], mixed_precision="no",
                       serving=False, screen=False, halving=False, log_with=["tensorboard"], log_dir="logs", workers=2, runs_per_gpu=3,
                       shard="1/2")
    worker = from_argv(worker_argv(every, "o.csv", ["id1", "id2"]))
    passed = {n for n, f in FIELDS.items() if f.metadata["where"] not in ("command", "pool")}
    for name in passed:
        assert getattr(worker, name) == getattr(every, name), f"--workers drops {name}"
    assert worker.run_ids == ["id1", "id2"] and worker.workers is None and worker.shard is None
    # every field differs from its default above, so a new option must be added to this test
    unset = [n for n in FIELDS if getattr(every, n) == FIELDS[n].default and n not in ("list", "dry_run", "run_ids")]
    assert not unset, f"set these options in the test: {unset}"


@needs_two_cores
def test_every_override_gives_the_same_runs_sequentially_and_with_two_workers(tmp_path, bert_dir, data_dir):
    """Every suite override and launch setting at once: the workers' rows are the sequential
    run's rows (same run_ids and figures)."""
    other = tmp_path / "other-data"
    for split, count, seed in (("train", 96, 1), ("test", 40, 2)):
        write_csv(other / f"{split}.csv", make_examples(count, seed))
    strategies = [{"name": "full", "kind": "full"}, {"name": "head", "kind": "head", "hidden": [8], "learning_rate": 1e-2}]
    suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, dataset={"label_names": ["x", "y"]})
    flags = ["--suite", suite, "--data-dir", other, "--label-names", "negative", "positive", "--train-size", 48,
             "--validation-size", 16, "--eval-size", 24, "--epochs", 2, "--seeds", 3, 4, "--mixed-precision", "no",
             "--no-serving", "--save", "--force", "--log-with", "tensorboard"]
    outputs = {}
    for how, extra in (("sequential", []), ("workers", ["--workers", 2])):
        outputs[how] = tmp_path / how / "r.csv"
        outputs[how].parent.mkdir()
        command = [*flags, "--output", outputs[how], "--log-dir", tmp_path / how / "logs", *extra]
        with a_workers_cores(2) if not extra else contextlib.nullcontext():  # sequential: a worker's threads
            result = subprocess.run(run_cli_argv(command), capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    rows = {how: sorted(read_results(path), key=lambda r: r["run_id"]) for how, path in outputs.items()}
    assert len(rows["sequential"]) == 4 and [r["run_id"] for r in rows["sequential"]] == [r["run_id"] for r in rows["workers"]]
    for a, b in zip(rows["sequential"], rows["workers"]):
        assert a["saved_model"] and b["saved_model"] and a["serving_form"] == "" and b["serving_form"] == ""
        for column in ("config_id", "train_examples", "validation_examples", "test_examples", "epochs", "seed", "train_loss",
                       "validation_accuracy", "test_accuracy", "test_loss", "label_names"):
            assert a[column] == b[column], column
    assert rows["sequential"][0]["train_examples"] == 48 and rows["sequential"][0]["test_examples"] == 24
    assert list(rows["sequential"][0]["label_names"]) == [0, 1]
    assert (tmp_path / "workers" / "logs").is_dir() and (tmp_path / "sequential" / "logs").is_dir()


def run_cli_argv(args) -> list[str]:
    import sys

    return [sys.executable, str(ROOT / "bench" / "run.py"), *map(str, args)]


@pytest.mark.skipif(not (SHARED_DATA / "imdb").is_dir(), reason="needs ../shared/data/imdb")
def test_the_committed_offline_tuned_run_ids_are_derived_again_and_all_done():
    committed = ROOT / "reports" / "offline-tuned.csv"
    before = committed.read_bytes()
    ids = {row["run_id"] for row in read_results(committed)}
    result = run_cli("--suite", "offline-tuned", "--output", committed, "--dry-run", "--mixed-precision", "no")
    assert result.returncode == 0, result.stderr[-2000:]
    listed = {line.split()[0] for line in result.stdout.splitlines() if line[:12].isalnum() and len(line.split()[0]) == 12}
    assert len(ids) == 21 and ids <= listed
    assert f"21 of {len(listed)} runs already have an ok row" in result.stdout
    assert committed.read_bytes() == before  # a dry run writes nothing


def test_labels_of_mixed_kinds_are_refused_before_training(tmp_path, bert_dir):
    data = tmp_path / "mixed"
    rows = [(text, ["0", "1", "neg", "pos"][i % 4]) for i, (text, _) in enumerate(make_examples(64, 1))]
    write_csv(data / "train.csv", rows)
    write_csv(data / "test.csv", rows[:16])
    result = run_cli("--suite", write_suite(tmp_path, [bert_dir], data), "--output", tmp_path / "r.csv")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: dataset column 'label' mixes numbers (0, 1) and class names (neg, pos)")
    assert not (tmp_path / "r.csv").exists()


def test_a_data_folder_with_other_classes_takes_its_labels_from_the_data(tmp_path, bert_dir):
    """A suite naming 2 classes, run on a 4-class folder: the names come from the data (with a
    note), or from --label-names."""
    four = tmp_path / "news"
    rows = [(text, ["world", "sports", "business", "science"][i % 4]) for i, (text, _) in enumerate(make_examples(64, 3))]
    write_csv(four / "train.csv", rows)
    write_csv(four / "test.csv", rows[:16])
    suite = write_suite(tmp_path, [bert_dir], tmp_path / "nowhere", dataset={"label_names": ["negative", "positive"]},
                        serving={"measure": False})
    result = run_cli("--suite", suite, "--data-dir", four, "--dry-run")
    assert result.returncode == 0, result.stderr[-1500:]
    assert "class names are taken from its labels" in result.stderr and "4 labels" in result.stdout
    named = run_cli("--suite", suite, "--data-dir", four, "--label-names", "a", "b", "--dry-run")
    assert named.returncode == 2 and "label_names lists 2 names, but column 'label' has 4 classes" in named.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_a_full_disk_stops_the_suite_with_one_line_and_leaves_whole_rows(tmp_path, bert_dir, data_dir):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        strategies = [{"name": f"s{i}", "kind": "head", "hidden": [8], "learning_rate": 1e-2 * (i + 1)} for i in range(12)]
        suite = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, serving={"measure": False})
        output = disk / "r.csv"
        result = run_cli("--suite", suite, "--output", output)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: no space left on the disk holding {disk}")
        data = output.read_bytes()
        assert data.endswith(b"\n")  # no torn last line
        with output.open(newline="") as f:
            written = list(csv.DictReader(f))
        assert written and all(row["status"] == "ok" for row in written)  # nothing but what happened
        assert len(written) < len(strategies)
    finally:
        subprocess.run(["umount", str(disk)])


def test_results_objects_have_short_reprs(tmp_path):
    from bench.results.columns import Row

    row = Row.parse({"run_id": "abc123", "status": "ok", "checkpoint": "c", "strategy": "full", "seed": "1",
                     "test_accuracy": "0.8125", "history": "[" + ", ".join(['{"epoch": 1}'] * 200) + "]"})
    assert repr(row) == "Row(abc123: c / full / seed 1: test accuracy 0.8125)"
    assert dataclasses.is_dataclass(RunOptions)


def test_the_docs_options_table_is_the_declared_options():
    from bench.options import DOCS_OPTIONS, options_markdown

    page = (ROOT / "docs" / "running.md").read_text()
    start, end = DOCS_OPTIONS
    assert page.split(start, 1)[1].split(end, 1)[0].strip() == options_markdown(), \
        "docs/running.md is out of date: python -m bench.options docs/running.md"


DOTTED = re.compile(r"\bbench(?:\.[A-Za-z_]\w*)+")
FILE = re.compile(r"\bbench/[\w/]+\.py\b")


def resolves(name: str) -> bool:
    """A dotted name: its longest importable module prefix, then attributes for the rest."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:end]))
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found = importlib.import_module(".".join(parts[:end]))
            for attr in parts[end:]:
                if not hasattr(found, attr):
                    return False
                found = getattr(found, attr)
            return True
    return False


def test_every_bench_name_in_the_code_docs_and_reports_exists():
    """A module moved or renamed leaves no stale dotted name or file path under bench behind: in the code
    (where the messages and the instructions written into exports live), the docs, the suites
    and the committed reports."""
    listed = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.yaml", "*.toml", "*.sh", "*.sbatch"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are not known")
    stale = set()
    for name in listed.stdout.split():
        text = (ROOT / name).read_text(errors="replace")
        stale |= {f"{name}: {n}" for n in set(DOTTED.findall(text)) if not resolves(n)}
        stale |= {f"{name}: {p}" for p in set(FILE.findall(text)) if not (ROOT / p).is_file()}
    assert not stale, sorted(stale)
