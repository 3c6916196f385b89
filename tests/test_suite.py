"""Suite YAML -> cells: expansion, overrides, run ids and strict validation."""

import pytest
import yaml
from conftest import write_suite

from bench.errors import BenchError
from bench.suite.load import available_suites, load_suite


def test_shipped_suites_load_and_express_the_seed_experiments():
    assert {"freezing", "models", "strategies", "offline"} <= set(available_suites())
    freezing = load_suite("freezing")
    assert freezing.checkpoints == ["bert-base-cased"]
    assert [s.params.get("patterns") for s in freezing.strategies] == [
        ["embeddings", "layer.0.", "classifier"],
        ["layer.10.", "layer.11.", "pooler", "classifier"],
        None,
    ]
    dataset = freezing.dataset  # the notebook's 25,000 train reviews: 1,000 held out for validation, 24,000 to train
    assert (dataset.name, dataset.train_size, dataset.validation_size, dataset.eval_size) == ("imdb", 24000, 1000, 5000)
    assert freezing.defaults.epochs == 2 and freezing.defaults.batch_size == 16
    assert freezing.defaults.learning_rate == 5e-5 and freezing.defaults.max_length == 100
    models = load_suite("models")
    assert models.checkpoints == ["bert-base-cased", "cardiffnlp/twitter-roberta-base-sentiment-latest"]
    kinds = {s.kind for s in load_suite("strategies").strategies}
    assert kinds == {"full", "freeze", "head", "lora", "cnn", "peft"}
    assert {s.kind for s in load_suite("offline").strategies} == {"full", "freeze", "head", "lora"}
    head = next(s for s in load_suite("strategies").strategies if s.kind == "head")
    assert head.params == {"hidden": [64], "pooling": "pooler"}
    for name in available_suites():  # every shipped suite chooses on validation; only non-notebook rates are swept
        suite = load_suite(name)
        assert suite.dataset.has_validation, name
        for strategy in suite.strategies:
            rate = {**suite.defaults.model_dump(), **suite.overrides[strategy.name]}["learning_rate"]
            assert "learning_rate" in suite.sweeps.get(strategy.name, {}) or rate == 5e-5, (name, strategy.name)


def test_cells_are_checkpoints_x_strategies_x_seeds_with_overrides(tmp_path, data_dir):
    path = write_suite(
        tmp_path,
        ["a-model", "b-model"],
        data_dir,
        strategies=[{"name": "full", "kind": "full"}, {"name": "lora", "kind": "lora", "learning_rate": "5e-4", "epochs": 3}],
        seeds=[1, 2, 3],
        learning_rate=2e-5,
    )
    cells = load_suite(str(path)).cells()
    assert len(cells) == 2 * 2 * 3
    lora = [c for c in cells if c.strategy.name == "lora"]
    assert {c.hparams.learning_rate for c in lora} == {5e-4}  # YAML's "5e-4" string is read as a number
    assert {c.hparams.epochs for c in lora} == {3}
    assert {c.hparams.learning_rate for c in cells if c.strategy.name == "full"} == {2e-5}
    assert [c.checkpoint for c in cells[:6]] == ["a-model"] * 6  # checkpoint outermost: tokenize once


def test_run_id_is_a_stable_hash_of_the_configuration(tmp_path, data_dir):
    path = write_suite(tmp_path, ["m"], data_dir, seeds=[1, 2])
    suite = load_suite(str(path))
    first, second = suite.cells(1, "no")
    again = load_suite(str(path)).cells(1, "no")[0]
    assert first.run_id() == again.run_id()
    assert first.run_id() != second.run_id()  # seed
    assert first.config_id() == second.config_id()  # ... which config_id leaves out
    assert first.run_id() != suite.cells(2, "no")[0].run_id()  # processes change the global batch
    assert first.run_id() != suite.cells(1, "bf16")[0].run_id()
    other = load_suite(str(write_suite(tmp_path, ["m"], data_dir, seeds=[1, 2], learning_rate=1e-4))).cells(1, "no")[0]
    assert first.run_id() != other.run_id() and first.config_id() != other.config_id()


def test_run_id_survives_moving_the_suite_with_its_data_and_checkpoints(tmp_path):
    """Local paths are hashed relative to the suite file: the same suite in another checkout
    (or on another node) has the same ids, so resume and merge see what is done."""
    import shutil

    from conftest import make_examples, write_csv

    ids = []
    for where in ("a", "b/deeper"):
        root = tmp_path / where
        write_csv(root / "data" / "train.csv", make_examples(8, 1))
        write_csv(root / "data" / "test.csv", make_examples(8, 2))
        (root / "ckpt").mkdir()
        suite = write_suite(root, ["./ckpt"], root / "data")
        text = suite.read_text().replace(str(root / "data"), "./data")
        suite.write_text(text)
        ids.append(load_suite(str(suite)).cells(1, "no")[0].run_id())
        shutil.rmtree(root / "ckpt")
    assert ids[0] == ids[1]


def test_command_line_overrides_win(tmp_path, data_dir):
    path = write_suite(tmp_path, ["m"], data_dir, strategies=[{"name": "f", "kind": "full", "epochs": 5}])
    suite = load_suite(str(path), {"dataset": {"train_size": 10, "eval_size": 5}, "defaults": {"epochs": 1, "seeds": [7]}})
    (cell,) = suite.cells()
    assert (cell.dataset.train_size, cell.dataset.eval_size, cell.hparams.epochs, cell.seed) == (10, 5, 1, 7)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"defaults": {"seeds": [3, 3]}}, "seed 3 is listed twice"),
        ({"dataset": {"train_size": True}}, "'train_size' must be an integer"),
        ({"defaults": {"mixed_precision": "fp8"}}, "'mixed_precision' must be one of"),
    ],
)
def test_command_line_overrides_are_validated_like_the_file(tmp_path, data_dir, overrides, message):
    path = write_suite(tmp_path, ["m"], data_dir)
    with pytest.raises(BenchError, match=message):
        load_suite(str(path), overrides)


def test_data_dir_override_from_flag_and_environment(tmp_path, data_dir, monkeypatch):
    path = write_suite(tmp_path, ["m"], tmp_path / "nowhere")
    assert load_suite(str(path), {"dataset": {"data_dir": str(data_dir)}}).dataset.data_dir == str(data_dir)
    monkeypatch.setenv("BENCH_DATA_DIR", str(data_dir))
    assert load_suite(str(path)).dataset.data_dir == str(data_dir)
    # the offline suite's own path is relative to the suite file, so it works from any cwd
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    offline = load_suite("offline").dataset.data_dir
    assert offline.endswith("shared/data/imdb") and offline.startswith("/")


def _suite_with(tmp_path, data_dir, **changes):
    path = write_suite(tmp_path, ["m"], data_dir)
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        elif value is None:
            raw.pop(section)
        else:
            raw[section] = value
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"checkpoint": ["m"]}, "unknown key 'checkpoint'"),
        ({"checkpoints": None}, "missing 'checkpoints'"),
        ({"checkpoints": []}, "non-empty list"),
        ({"strategies": [{"name": "x"}]}, "has no 'kind'"),
        ({"strategies": [{"kind": "full"}, {"kind": "full"}]}, "two strategies are named 'full'"),
        ({"strategies": [{"kind": "freeze", "top": "two"}]}, "'top' must be an integer"),
        ({"defaults__epochs": 0}, "'epochs' must be positive"),
        ({"defaults__batch_size": 1.5}, "'batch_size' must be an integer"),
        ({"defaults__learning_rate": "fast"}, "'learning_rate' must be a number"),
        ({"defaults__seeds": []}, "'seeds' must be a non-empty list"),
        ({"defaults__mixed_precision": "fp8"}, "'mixed_precision' must be one of auto, no, fp16 or bf16"),
        ({"defaults__epoch": 2}, "unknown key 'epoch'"),
        ({"dataset__text_col": "x"}, "unknown key 'text_col'"),
        ({"dataset": {"train_split": "train"}}, "give a hub 'name', local 'files' or a 'data_dir'"),
        ({"dataset__train_size": -5}, "'train_size' must be positive"),
        ({"dataset__files": {"train": "a.csv"}}, "files must name both 'train' and 'eval'"),
        ({"strategies": "full"}, "'strategies' must be a list"),
        ({"strategies": []}, "'strategies' must be a non-empty list"),
    ],
)
def test_malformed_suites_fail_with_one_clear_line(tmp_path, data_dir, changes, message):
    with pytest.raises(BenchError) as err:
        load_suite(_suite_with(tmp_path, data_dir, **changes))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_suite_lists_the_available_ones():
    with pytest.raises(BenchError, match=r"unknown suite 'nope'; available: .*freezing.*offline"):
        load_suite("nope")


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ndataset:\n  name: imdb\n strategies: [\n")
    with pytest.raises(BenchError, match=r"bad.yaml line \d+: malformed YAML"):
        load_suite(str(path))
    path.write_text("- just\n- a list\n")
    with pytest.raises(BenchError, match="expected a mapping"):
        load_suite(str(path))


def test_a_bare_folder_name_beside_the_suite_is_that_folder_not_a_hub_id(tmp_path, data_dir):
    (tmp_path / "my-checkpoint").mkdir()
    suite = load_suite(str(write_suite(tmp_path, ["my-checkpoint", "org/hub-model"], data_dir)))
    assert suite.checkpoints == [str((tmp_path / "my-checkpoint").resolve()), "org/hub-model"]


def test_yaml_reads_5e_5_as_a_number_and_sweeps_expand(tmp_path, data_dir):
    path = write_suite(tmp_path, ["m"], data_dir, dataset={"validation_size": 10})
    path.write_text(path.read_text().replace("learning_rate: 0.001", "learning_rate: 5e-5"))
    assert load_suite(str(path)).defaults.learning_rate == 5e-5
    raw = yaml.safe_load(path.read_text())
    raw["defaults"]["sweep"] = {"weight_decay": [0.0, 0.01]}
    raw["strategies"] = [{"name": "h", "kind": "head", "sweep": {"hidden": [[8], [16, 8]]}}]
    path.write_text(yaml.safe_dump(raw))
    cells = load_suite(str(path)).cells()
    assert sorted((c.hparams.weight_decay, tuple(c.strategy.params["hidden"])) for c in cells) == [
        (0.0, (8,)), (0.0, (16, 8)), (0.01, (8,)), (0.01, (16, 8))]
    assert len({c.tuning_id() for c in cells}) == 1 and cells[0].point_label() == "weight_decay=0, hidden=[8]"
