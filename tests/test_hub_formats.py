"""The hub's own layouts, offline: a dataset with configurations (a folder laid out as a hub
dataset repository, its README naming the configurations and a ClassLabel, as glue/mrpc does)
and checkpoints pinned to a revision (a hub cache holding two commits of one model, as
huggingface_hub writes it). No network: the same code paths read the hub's files from disk."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_checkpoint, make_examples, run_cli, write_csv, write_suite

from bench.results.store import read_results
from bench.run import main
from bench.suite.load import load_suite

CARD = """---
configs:
- config_name: reviews
  data_files:
  - {split: train, path: reviews/train.csv}
  - {split: test, path: reviews/test.csv}
- config_name: pairs
  data_files:
  - {split: train, path: pairs/train.csv}
  - {split: test, path: pairs/test.csv}
dataset_info:
- config_name: pairs
  features:
  - {name: sentence1, dtype: string}
  - {name: sentence2, dtype: string}
  - name: label
    dtype:
      class_label:
        names: {'0': not_equivalent, '1': equivalent}
---
"""


@pytest.fixture(scope="module")
def hub_dataset(tmp_path_factory) -> Path:
    """A dataset repository with two configurations: reviews (text, label) and pairs
    (sentence1, sentence2, label as a ClassLabel with names)."""
    folder = tmp_path_factory.mktemp("hub-dataset")
    (folder / "README.md").write_text(CARD)
    for split, count, seed in (("train", 96, 1), ("test", 37, 2)):
        rows = make_examples(count, seed)
        write_csv(folder / "reviews" / f"{split}.csv", rows)
        # a pair is "equivalent" when its second text carries the first one's sentiment word
        write_csv(folder / "pairs" / f"{split}.csv", [(text, text.split()[0] + " " + text, label) for text, label in rows],
                  header=("sentence1", "sentence2", "label"))
    return folder


def pair_suite(tmp_path, bert_dir, hub_dataset, **dataset):
    spec = {"name": str(hub_dataset), "config": "pairs", "text_column": "sentence1", "text_pair_column": "sentence2", **dataset}
    return write_suite(tmp_path, [bert_dir], None, dataset=spec, serving={"measure": False}, max_length=48)


def test_a_dataset_configuration_is_loaded_by_name_and_its_class_names_label_the_export(tmp_path, bert_dir, hub_dataset):
    suite = pair_suite(tmp_path, bert_dir, hub_dataset)
    output = tmp_path / "pairs.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--save"]) == 0
    (row,) = read_results(output)
    assert row["status"] == "ok" and row["train_examples"] == 96 and row["test_examples"] == 37
    config = json.loads((output.parent / row["saved_model"] / "config.json").read_text())
    assert config["id2label"] == {"0": "not_equivalent", "1": "equivalent"}
    cell = load_suite(str(suite)).cells()[0]
    assert cell.config()["dataset"]["config"] == "pairs"


def test_a_suite_without_config_or_label_names_keeps_its_run_ids(tmp_path, bert_dir, data_dir):
    plain = load_suite(str(write_suite(tmp_path, [bert_dir], data_dir, name="plain"))).cells()[0]
    named = load_suite(str(write_suite(tmp_path, [bert_dir], data_dir, name="plain",
                                       dataset={"label_names": ["negative", "positive"]}))).cells()[0]
    assert "config" not in plain.config()["dataset"] and "label_names" not in named.config()["dataset"]
    assert plain.run_id() == named.run_id()  # names only: the same run


@pytest.mark.parametrize("dataset, message", [
    ({"config": "pears"}, "has no configuration 'pears'; it has: reviews, pairs"),
    ({"config": None}, "has several configurations: reviews, pairs; set dataset.config"),
    ({"label_names": ["a", "b", "c"]}, "label_names lists 3 names, but column 'label' has 2 classes"),
])
def test_a_configuration_the_dataset_lacks_is_one_line_naming_the_ones_it_has(tmp_path, bert_dir, hub_dataset, dataset, message, capsys):
    suite = pair_suite(tmp_path, bert_dir, hub_dataset, **dataset)
    if dataset.get("config", "") is None:  # no configuration named, on a dataset with two
        suite = write_suite(tmp_path, [bert_dir], None, dataset={"name": str(hub_dataset)})
    assert main(["--suite", str(suite), "--output", str(tmp_path / "x.csv"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "x.csv").exists()


# ----------------------------------------------------------------------------- pinned revisions

OLD, NEW = "1" * 40, "2" * 40


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A hub cache (huggingface_hub's layout) holding two commits of acme/tiny-bert with
    different weights; main points at the newer."""
    root = tmp_path_factory.mktemp("hf-cache")
    repo = root / "hub" / "models--acme--tiny-bert"
    for commit, seed in ((OLD, 0), (NEW, 1)):
        source = build_checkpoint(root / f"build-{seed}", "bert", initializer_range=0.02 * (seed + 1))
        shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(NEW)
    return root


def test_a_pinned_checkpoint_trains_the_weights_of_its_revision_and_rows_say_which(tmp_path, hub_cache, data_dir):
    suite = write_suite(tmp_path, ["acme/tiny-bert", f"acme/tiny-bert@{OLD}"], data_dir, serving={"measure": False})
    output = tmp_path / "pinned.csv"
    env = {"HF_HUB_CACHE": str(hub_cache / "hub"), "HF_HUB_OFFLINE": "1"}
    result = run_cli("--suite", suite, "--output", output, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {r["checkpoint"]: r for r in read_results(output)}
    assert rows["acme/tiny-bert"]["checkpoint_revision"] == NEW  # what "main" resolved to
    assert rows[f"acme/tiny-bert@{OLD}"]["checkpoint_revision"] == OLD
    assert rows["acme/tiny-bert"]["run_id"] != rows[f"acme/tiny-bert@{OLD}"]["run_id"]
    assert rows["acme/tiny-bert"]["test_loss"] != rows[f"acme/tiny-bert@{OLD}"]["test_loss"]  # other weights trained

    missing = write_suite(tmp_path, [f"acme/tiny-bert@{'3' * 40}"], data_dir, name="missing")
    result = run_cli("--suite", missing, "--output", tmp_path / "missing.csv", env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"acme/tiny-bert@{'3' * 40}" in result.stderr and not (tmp_path / "missing.csv").exists()


def test_a_local_checkpoint_is_identified_by_a_hash_of_its_weights(tmp_path, bert_dir):
    from bench.inputs.checkpoints import Checkpoint

    copy = shutil.copytree(bert_dir, tmp_path / "copy")
    first = Checkpoint(str(bert_dir), 2).revision_id()
    assert first.startswith("sha256:") and Checkpoint(str(copy), 2).revision_id() == first
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert Checkpoint(str(copy), 2).revision_id() != first
