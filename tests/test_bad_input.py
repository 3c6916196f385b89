"""The bad-input wall, through the real command line: one `error:` line naming the problem,
exit code 2, no traceback, nothing written."""

import json

import pytest
from conftest import build_checkpoint, make_examples, run_cli, write_csv, write_suite

from bench.results.store import append_row


def _data(tmp, name, train_rows, test_rows=None, header=("text", "label")):
    folder = tmp / name
    write_csv(folder / "train.csv", train_rows, header=header)
    write_csv(folder / "test.csv", test_rows if test_rows is not None else train_rows, header=header)
    return folder


def _as_torch_bin(folder):
    """The checkpoint's weights as a torch.save zip (pytorch_model.bin), as older hub models ship."""
    import torch
    from safetensors.torch import load_file

    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()


def _cases(tmp, bert_dir, roberta_dir, data_dir):
    good = make_examples(20, seed=1)
    suite = lambda name, **kw: write_suite(tmp, [bert_dir], data_dir, name=name, **kw)
    blank = [(t if i != 3 else "   ", y) for i, (t, y) in enumerate(good)]
    duplicate_key = tmp / "dupkey.yaml"
    duplicate_key.write_text(suite("dk").read_text() + "name: again\n")
    empty = tmp / "empty.yaml"
    empty.write_text("")
    a_list = tmp / "list.yaml"
    a_list.write_text("- a\n- b\n")
    header_only = tmp / "header-only"
    header_only.mkdir()
    (header_only / "train.csv").write_text("text,label\n")
    (header_only / "test.csv").write_text("text,label\n")
    truncated = build_checkpoint(tmp / "truncated", "bert")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    truncated_bin = build_checkpoint(tmp / "truncated-bin", "bert")
    _as_torch_bin(truncated_bin)
    torch_bin = truncated_bin / "pytorch_model.bin"
    torch_bin.write_bytes(torch_bin.read_bytes()[: torch_bin.stat().st_size * 9 // 10])
    missing_shard = build_checkpoint(tmp / "missing-shard", "bert")
    (missing_shard / "model.safetensors").rename(missing_shard / "model-00001-of-00002.safetensors")
    (missing_shard / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"bert.pooler.dense.bias": "model-00001-of-00002.safetensors",
                                        "classifier.bias": "model-00002-of-00002.safetensors"}}))
    corrupt = build_checkpoint(tmp / "corrupt", "bert")
    (corrupt / "config.json").write_text("{ not json")
    not_utf8 = tmp / "latin1.yaml"
    not_utf8.write_bytes(suite("l1").read_bytes().replace(b"name: l1", "name: caf\xe9".encode("latin-1")))
    empty_folder = tmp / "empty-checkpoint"
    empty_folder.mkdir()
    named = [(t, ("neg", "pos")[y]) for t, y in good]  # the test split names its labels, the train split numbers them
    return {
        "truncated-weights": (write_suite(tmp, [truncated], data_dir, name="tw"), "model.safetensors is truncated"),
        "truncated-bin-weights": (write_suite(tmp, [truncated_bin], data_dir, name="tb"), "pytorch_model.bin is truncated"),
        "missing-shard": (write_suite(tmp, [missing_shard], data_dir, name="ms"), "shard model-00002-of-00002.safetensors"),
        "corrupt-config": (write_suite(tmp, [corrupt], data_dir, name="cc"), "cannot load"),
        "mixed-label-types": (write_suite(tmp, [bert_dir], _data(tmp, "mixed", good, named), name="mx"), "Failed to parse string: 'pos'"),
        "header-only-csv": (write_suite(tmp, [bert_dir], header_only, name="ho"), "has a header but no rows"),
        "nan-learning-rate": (suite("nan", learning_rate=float("nan")), "'learning_rate' must be a finite number"),
        "inf-learning-rate": (suite("inf", learning_rate=float("inf")), "'learning_rate' must be a finite number"),
        "batch-size-0": (suite("b0", batch_size=0), "'batch_size' must be positive"),
        "epochs-string": (suite("es", epochs="two"), "'epochs' must be an integer"),
        "max-length-beyond-positions": (write_suite(tmp, [roberta_dir], data_dir, name="ml", max_length=100),
                                        "max_length 100 is beyond what"),
        "duplicate-yaml-key": (duplicate_key, "duplicate key 'name'"),
        "duplicate-checkpoint": (write_suite(tmp, [bert_dir, bert_dir], data_dir, name="dc"), "is listed twice"),
        "duplicate-seed": (suite("ds", seeds=[1, 1]), "seed 1 is listed twice"),
        "empty-seeds": (suite("se", seeds=[]), "'seeds' must be a non-empty list"),
        "empty-suite": (empty, "expected a mapping"),
        "suite-is-a-list": (a_list, "expected a mapping"),
        "blank-text": (write_suite(tmp, [bert_dir], _data(tmp, "blank", blank), name="bt"), "empty or missing text"),
        "float-labels": (write_suite(tmp, [bert_dir], _data(tmp, "fl", [(t, y + 0.5) for t, y in good]), name="fl"),
                         "non-integer labels"),
        "labels-out-of-range": (write_suite(tmp, [bert_dir], _data(tmp, "lr", [(t, y * 2) for t, y in good]), name="lr"),
                                "numeric labels must be 0..K-1"),
        "single-class": (write_suite(tmp, [bert_dir], _data(tmp, "sc", [(t, 1) for t, _ in good]), name="sc"),
                         "holds a single label"),
        "top-beyond-depth": (suite("td", strategies=[{"kind": "freeze", "top": 5}]), "exceeds the 2 layers"),
        "lora-r-0": (suite("r0", strategies=[{"kind": "lora", "r": 0}]), "'r' must be positive, got 0"),
        "head-hidden-negative": (suite("hn", strategies=[{"kind": "head", "hidden": [-1]}]), "'hidden[0]' must be positive"),
        # the schema's classes (bench/suite/schema.py): wrong types inside dataset and strategies, values out of range
        "data-dir-number": (suite("dn", dataset={"data_dir": 5}), "dataset: 'data_dir' must be a string, got 5"),
        "kind-a-list": (suite("kl", strategies=[{"kind": ["full"]}]), "unknown strategy kind ['full']"),
        "negative-seed": (suite("ns", seeds=[-1]), "'seeds[0]' must be zero or more, got -1"),
        "negative-shuffle-seed": (suite("nss", dataset={"shuffle_seed": -3}), "'shuffle_seed' must be zero or more"),
        "warmup-above-1": (suite("wu", warmup_ratio=1.5), "'warmup_ratio' must be at most 1"),
        "negative-layer-count": (suite("nl", strategies=[{"kind": "freeze", "top": -1}]), "'top' must be zero or more"),
        "max-length-below-special-tokens": (suite("mls", max_length=2), "max_length 2 leaves no room for text"),
        "not-utf8": (not_utf8, "is not UTF-8"),
        "text-column-is-label-column": (suite("tl", dataset={"label_column": "text"}), "must be different columns"),
        "fp16-on-cpu": (suite("f16", mixed_precision="fp16"), "fp16 needs a GPU"),
        "empty-checkpoint-folder": (write_suite(tmp, [empty_folder], data_dir, name="ecf"), "is empty"),
        "empty-freeze-pattern": (suite("efp", strategies=[{"kind": "freeze", "patterns": [""]}]), "'patterns[0]' must be a non-empty text"),
        "sweep-of-unknown-key": (suite("suk", strategies=[{"kind": "lora", "sweep": {"lr": [1e-3]}}], dataset={"validation_size": 5}),
                                 "sweep: 'lr' is neither a hyperparameter nor an option"),
        "sweep-without-validation": (suite("swv", strategies=[{"kind": "lora", "sweep": {"learning_rate": [1e-3]}}]),
                                     "a sweep is chosen on validation data, and the dataset has none"),
        "patience-without-select-best": (suite("pw", patience=2), "patience (early stopping) needs select: best"),
        "validation-too-large": (suite("vl", dataset={"validation_size": 500}), "too few to carve 500 validation examples"),
        "serving-batch-size-0": (suite("sb", serving={"batch_sizes": [0]}), "serving: 'batch_sizes[0]' must be positive, got 0"),
        "serving-unknown-key": (suite("su", serving={"batch": 8}), "serving: unknown key 'batch'"),
    }


CASES = [
    "nan-learning-rate", "inf-learning-rate", "batch-size-0", "epochs-string", "max-length-beyond-positions",
    "duplicate-yaml-key", "duplicate-checkpoint", "duplicate-seed", "empty-seeds", "empty-suite", "suite-is-a-list",
    "blank-text", "float-labels", "labels-out-of-range", "single-class", "top-beyond-depth", "lora-r-0",
    "head-hidden-negative", "data-dir-number", "kind-a-list", "negative-seed", "negative-shuffle-seed", "warmup-above-1",
    "negative-layer-count", "max-length-below-special-tokens", "not-utf8", "text-column-is-label-column", "fp16-on-cpu",
    "empty-checkpoint-folder", "empty-freeze-pattern", "sweep-of-unknown-key", "sweep-without-validation",
    "patience-without-select-best", "validation-too-large", "serving-batch-size-0", "serving-unknown-key", "truncated-weights", "truncated-bin-weights", "missing-shard", "corrupt-config", "mixed-label-types", "header-only-csv",
]


# As a user runs them, in a fresh process (the rest run in this one: the same main(), without
# importing torch 40 times; an unexpected exception there fails the test with its traceback).
THROUGH_THE_CLI = {"not-utf8", "truncated-weights", "fp16-on-cpu", "mixed-label-types"}


@pytest.mark.parametrize("case", CASES)
def test_bad_suite_or_data(tmp_path, bert_dir, roberta_dir, data_dir, case, capsys):
    from bench.run import main

    suite, message = _cases(tmp_path, bert_dir, roberta_dir, data_dir)[case]
    output = tmp_path / "kept.csv"
    append_row(output, {"suite": "earlier", "run_id": "0123456789ab", "status": "ok"})
    before = output.read_bytes()
    if case in THROUGH_THE_CLI:
        result = run_cli("--suite", suite, "--output", output)
        code, stderr = result.returncode, result.stderr
    else:
        code, stderr = main(["--suite", str(suite), "--output", str(output)]), capsys.readouterr().err
    assert code == 2, stderr[-1500:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-1500:]
    assert "Traceback" not in stderr
    assert output.read_bytes() == before


@pytest.mark.parametrize("case", ["folder", "missing-folder", "unreadable"])
def test_a_bad_output_path_is_refused_before_training(tmp_path, bert_dir, data_dir, case):
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    output = {"folder": tmp_path, "missing-folder": tmp_path / "nowhere" / "out.csv", "unreadable": tmp_path / "bin.csv"}[case]
    if case == "unreadable":
        output.write_bytes(b"\xff\xfe\x00garbage\x00\n")
    result = run_cli("--suite", suite, "--output", output)
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.predictions"))


def test_an_existing_report_in_a_read_only_folder_is_refused_before_training(tmp_path, bert_dir, data_dir):
    """Appends need the folder too (the lock file lives there), even when the report itself
    is writable. Run without root's override, so the folder's mode applies."""
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    folder = tmp_path / "reports"
    folder.mkdir()
    output = folder / "kept.csv"
    append_row(output, {"suite": "earlier", "run_id": "0123456789ab", "status": "ok"})
    (folder / ".kept.csv.lock").unlink()
    before = output.read_bytes()
    folder.chmod(0o555)
    try:
        result = run_cli("--suite", suite, "--output", output, unprivileged=True)
    finally:
        folder.chmod(0o755)
    assert result.returncode == 2, result.stderr[-1500:]
    assert result.stderr.strip().splitlines() == [
        f"error: cannot write the report {output}: no write permission (it and its folder must be writable)"
    ]
    assert output.read_bytes() == before and not list(folder.glob(".*lock"))


def test_option_errors_are_one_line():
    result = run_cli("--suite", "offline", "--epochs", "two")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: argument --epochs: invalid int value: 'two' (see --help)"]


def test_a_data_folder_from_the_environment_is_named_as_such(tmp_path, bert_dir, data_dir):
    suite = write_suite(tmp_path, [bert_dir], tmp_path / "nowhere")
    result = run_cli("--suite", suite, "--output", tmp_path / "r.csv", env={"BENCH_DATA_DIR": str(tmp_path / "missing")})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "BENCH_DATA_DIR" in line and "does not exist" in line


def test_an_existing_report_with_a_malformed_row_is_refused_before_training(tmp_path, bert_dir, data_dir):
    """Found only after training, the run's result would have nowhere to go."""
    suite = write_suite(tmp_path, [bert_dir], data_dir)
    output = tmp_path / "kept.csv"
    append_row(output, {"suite": "earlier", "run_id": "0123456789ab", "status": "ok", "test_accuracy": 0.8})
    output.write_text(output.read_text().replace(",0.8,", ",eighty percent,"))
    before = output.read_bytes()
    result = run_cli("--suite", suite, "--output", output)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "column 'test_accuracy' holds 'eighty percent'" in line and "malformed row" in line
    assert output.read_bytes() == before and not list(tmp_path.glob("*.predictions"))
