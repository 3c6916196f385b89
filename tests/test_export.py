"""--save exports each run in the format its kind allows (bench/deploy/export.py), and plain
transformers / peft code loads it and predicts exactly what the run recorded on the test
split: `pipeline` for full and freeze runs and merged adapters, AutoPeftModel for adapters.
Heads on a frozen backbone are rebuilt by bench.deploy.export.load_saved; bench.predict loads all."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, write_suite

from bench.deploy.predict import predict
from bench.results.store import read_results
from bench.run import main

STRATEGIES = [
    {"name": "full", "kind": "full", "epochs": 10},  # long enough to learn: its predictions are not all one class
    {"name": "freeze-cached", "kind": "freeze", "top": 1, "cache_frozen": True},
    {"name": "head", "kind": "head", "hidden": [8], "pooling": "mean", "learning_rate": 1e-2},
    {"name": "lora", "kind": "lora", "r": 4, "learning_rate": 1e-2},
    {"name": "cnn", "kind": "cnn", "kernel_sizes": [2], "channels": 8, "learning_rate": 1e-2},
    {"name": "prompt", "kind": "peft", "method": "prompt_tuning", "options": {"num_virtual_tokens": 4}, "learning_rate": 1e-2},
]
NAMES = ["negative", "positive"]
MAX_LENGTH = 32


@pytest.fixture(scope="module")
def saved(tmp_path_factory, bert_dir, data_dir):
    tmp = tmp_path_factory.mktemp("saved")
    suite = write_suite(tmp, [bert_dir], data_dir, strategies=STRATEGIES, epochs=2, max_length=MAX_LENGTH,
                        dataset={"label_names": NAMES}, serving={"measure": False})
    output = tmp / "saved.csv"
    assert main(["--suite", str(suite), "--output", str(output), "--save"]) == 0
    return output, {row["strategy"]: row for row in read_results(output)}


@pytest.fixture(scope="module")
def texts(data_dir):
    with (data_dir / "test.csv").open() as f:
        return [r["text"] for r in csv.DictReader(f)]  # the whole test split in file order: idx = row


def recorded(output, row) -> list[str]:
    """The run's own test predictions, as class names, by idx."""
    with (output.parent / row["predictions_file"]).open() as f:
        by_idx = {int(r["idx"]): r["prediction"] for r in csv.DictReader(f)}
    values = [str(v) for v in row["label_names"]]
    return [NAMES[values.index(by_idx[i])] for i in range(len(by_idx))]


def folder_of(output, row):
    return output.parent / row["saved_model"]


@pytest.mark.parametrize("strategy", ["full", "freeze-cached"])
def test_a_trained_classifier_loads_in_a_plain_pipeline_with_its_label_names(saved, texts, strategy):
    from transformers import pipeline

    output, rows = saved
    folder = folder_of(output, rows[strategy])
    classify = pipeline("text-classification", model=str(folder), device="cpu")
    answers = classify(texts, truncation=True, max_length=MAX_LENGTH)
    assert [a["label"] for a in answers] == recorded(output, rows[strategy])
    assert {a["label"] for a in answers} <= set(NAMES)
    assert json.loads((folder / "run.json").read_text())["format"] == "transformers"


@pytest.mark.parametrize("strategy", ["lora", "prompt"])
def test_an_adapter_loads_with_autopeftmodel_and_predicts_what_the_run_recorded(saved, texts, strategy):
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    output, rows = saved
    folder = folder_of(output, rows[strategy])
    model = AutoPeftModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**batch).logits.argmax(-1).tolist()
    assert [NAMES[i] for i in predicted] == recorded(output, rows[strategy])


def test_a_merged_lora_loads_in_a_plain_pipeline_and_a_prompt_method_has_no_merged_model(saved, texts):
    from transformers import pipeline

    output, rows = saved
    folder = folder_of(output, rows["lora"])
    classify = pipeline("text-classification", model=str(folder / "merged"), device="cpu")
    answers = classify(texts, truncation=True, max_length=MAX_LENGTH)
    assert [a["label"] for a in answers] == recorded(output, rows["lora"])
    assert not any("lora" in k for k in json.loads((folder / "merged" / "config.json").read_text()))
    assert not (folder_of(output, rows["prompt"]) / "merged").exists()


@pytest.mark.parametrize("strategy", ["head", "cnn"])
def test_a_head_on_a_frozen_backbone_loads_in_a_pipeline_with_its_own_code(saved, texts, strategy):
    """merged/ carries bench/inputs/heads.py: transformers loads it with trust_remote_code, no project import."""
    from transformers import pipeline

    output, rows = saved
    merged = folder_of(output, rows[strategy]) / "merged"
    assert (merged / "heads.py").is_file() and "bench" not in (merged / "heads.py").read_text().split('"""')[2]
    config = json.loads((merged / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "heads.FrozenHeadForSequenceClassification"
    classify = pipeline("text-classification", model=str(merged), trust_remote_code=True, device="cpu")
    answers = classify(texts, truncation=True, max_length=MAX_LENGTH)
    assert [a["label"] for a in answers] == recorded(output, rows[strategy])


@pytest.mark.parametrize("strategy", [s["name"] for s in STRATEGIES])
def test_bench_predict_loads_every_kind_and_predicts_what_the_run_recorded(saved, texts, strategy):
    output, rows = saved
    folder = folder_of(output, rows[strategy])
    run = json.loads((folder / "run.json").read_text())
    assert run["kind"] == rows[strategy]["strategy_kind"] and run["labels"] == NAMES
    assert run["checkpoint_revision"] == rows[strategy]["checkpoint_revision"].strip() != ""
    predicted = predict(folder, texts)
    assert [label for label, _ in predicted] == recorded(output, rows[strategy])
    assert all(0.5 <= p <= 1 for _, p in predicted)


def test_only_what_trained_is_kept_where_the_checkpoint_is_unchanged(saved):
    output, rows = saved
    size = lambda strategy, name: (folder_of(output, rows[strategy]) / name).stat().st_size
    whole = size("full", "model.safetensors")
    assert size("freeze-cached", "model.safetensors") == pytest.approx(whole, rel=0.01)  # pretrained weights changed
    for strategy, name in (("lora", "adapter_model.safetensors"), ("prompt", "adapter_model.safetensors"),
                           ("head", "head.safetensors"), ("cnn", "head.safetensors")):
        assert size(strategy, name) < whole / 10, strategy
    assert not list((output.parent / "saved.models").glob(".*"))  # no staging folder left behind


def test_predict_command_line(saved):
    output, rows = saved
    run_id = rows["full"]["run_id"]
    result = subprocess.run([sys.executable, "-m", "bench.predict", run_id, "a superb film", "--models", str(output.parent / "saved.models")],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    label, probability, text = result.stdout.strip().split("\t")
    assert label in NAMES and 0.5 <= float(probability) <= 1 and text == "a superb film"
    missing = subprocess.run([sys.executable, "-m", "bench.predict", "000000000000", "x", "--models", str(output.parent)],
                             capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no saved run '000000000000'")
