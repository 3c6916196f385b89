"""The decision report and the compare gate, on CSVs and prediction files written by the
project's own CSV writer: statistics against values worked out by hand, tests whose answer
is known, the recommendation on a constructed frontier, real PNGs, compare's exit codes."""

import hashlib
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from bench.decision.cost import parse_prices, price_for, run_cost
from bench.decision.decide import pareto_front
from bench.decision.stats import holm, paired_example_test, paired_seed_test, summarize
from bench.results.provenance import write_predictions
from bench.results.store import append_row

EVAL = 400
LABELS = ["neg", "pos"]
TRUTH = np.arange(EVAL) % 2  # balanced: the majority rate is 0.5


def predictions_with_errors(wrong: set) -> list:
    """(idx, label, prediction, loss) with the examples in `wrong` misclassified."""
    return [(i, int(y), int(1 - y) if i in wrong else int(y), 0.5) for i, y in enumerate(TRUTH)]


def write_run(report, strategy, seed, wrong, train_seconds, trainable, memory=1000.0, device="NVIDIA H100 80GB HBM3",
              samples_per_s=100.0, loss_ratio=0.9, degenerate=False, predictions=None, serving_per_s=None,
              checkpoint="org/model-a", revision=""):
    config_id = hashlib.sha256(strategy.encode()).hexdigest()[:12]
    run_id = hashlib.sha256(f"{strategy}-{seed}".encode()).hexdigest()[:12]
    predictions = predictions or predictions_with_errors(wrong)
    started = f"2026-11-26T10:{seed:02d}:00+00:00"
    file = write_predictions(report, run_id, started, predictions, LABELS)
    accuracy = sum(y == p for _, y, p, _ in predictions) / EVAL
    append_row(report, {
        "suite": "constructed", "run_id": run_id, "config_id": config_id, "status": "ok", "checkpoint": checkpoint,
        "strategy": strategy, "strategy_kind": "full", "seed": seed, "test_accuracy": accuracy, "loss_ratio": loss_ratio,
        "train_samples_per_s": samples_per_s, "steady_train_samples_per_s": samples_per_s, "train_seconds": train_seconds,
        "num_processes": 1, "device": device, "trainable_params": trainable, "peak_memory_mb": memory,
        "train_examples": 1000, "test_examples": EVAL, "train_split_examples": 25000, "degenerate": degenerate,
        "predictions_file": file, "started_at": started, "ended_at": started, "checkpoint_revision": revision,
        **({"serving_form": "as trained", "serving_samples_per_s": serving_per_s, "serving_batch_size": 256,
            "serving_latency_p50_ms": 256_000 / serving_per_s, "serving_latency_p95_ms": 256_000 / serving_per_s,
            "serving_latency_p99_ms": 256_000 / serving_per_s, "serving_tokenize_ms": 0.2} if serving_per_s else {}),
    })


def constructed_suite(report, seeds=(1, 2, 3)):
    """big: best and dearest; small: nearly as good (2 more errors) at a tenth of the cost;
    tiny: clearly worse and cheaper still; one-class: degenerate and cheapest."""
    rng = np.random.default_rng(0)
    for seed in seeds:
        base = set(rng.choice(EVAL, 40, replace=False).tolist())  # the errors every config shares this seed
        write_run(report, "big", seed, base, train_seconds=3600, trainable=100_000_000, memory=30_000, loss_ratio=0.4)
        write_run(report, "small", seed, base | {0, 1} if seed == 1 else base | {2}, train_seconds=360,
                  trainable=1_000_000, memory=10_000)
        write_run(report, "tiny", seed, base | set(range(100, 200)), train_seconds=60, trainable=10_000, memory=5_000)
        write_run(report, "one-class", seed, set(), train_seconds=10, trainable=1_000, memory=4_000, degenerate=True,
                  predictions=[(i, int(y), 1, 0.7) for i, y in enumerate(TRUTH)])


def test_seed_summary_matches_hand_computation():
    summary = summarize([0.80, 0.82, 0.84])
    assert summary.mean == pytest.approx(0.82) and summary.std == pytest.approx(0.02)  # sqrt((0.02^2 + 0 + 0.02^2) / 2)
    assert 0.80 <= summary.low <= 0.82 <= summary.high <= 0.84
    one = summarize([0.7])
    assert (one.mean, one.std, one.low, one.high) == (0.7, None, None, None)
    flat = summarize([0.5, 0.5, 0.5])
    assert (flat.mean, flat.std, flat.low, flat.high) == (0.5, 0.0, 0.5, 0.5)


def test_paired_tests_on_cases_whose_answer_is_known():
    same = predictions_correct(set())
    identical = paired_example_test(same, same)
    assert (identical.test, identical.p_value, identical.difference, identical.examples) == ("McNemar exact", 1.0, 0.0, EVAL)
    # B wrong on 30 examples A gets right, never the other way: exact two-sided p = 2 x 0.5^30
    better = paired_example_test(same, predictions_correct(set(range(30))))
    assert better.p_value == pytest.approx(2 * 0.5**30) and better.difference == pytest.approx(30 / EVAL)
    # 3 discordant pairs each way: nothing to tell them apart
    assert paired_example_test(predictions_correct({1, 2, 3}), predictions_correct({4, 5, 6})).p_value == 1.0
    # several seeds: the paired bootstrap; a clear gap is significant, none is not
    a = np.vstack([predictions_correct(set())] * 3)
    b = np.vstack([predictions_correct(set(range(40)))] * 3)
    assert paired_example_test(a, b).test == "paired bootstrap" and paired_example_test(a, b).p_value < 0.001
    assert paired_example_test(a, a).p_value == 1.0
    assert paired_seed_test({1: 0.8, 2: 0.7, 3: 0.9}, {1: 0.8, 2: 0.7, 3: 0.9}) == (1.0, 3)
    assert paired_seed_test({1: 0.8, 2: 0.7}, {1: 0.6, 2: 0.5}) is None  # fewer than 3 shared seeds
    assert math.isnan(paired_seed_test({1: 0.8, 2: 0.7, 3: 0.9}, {1: 0.7, 2: 0.6, 3: 0.8})[0])  # no spread: undefined
    assert holm([0.02, float("nan")])[0] == 0.02 and math.isnan(holm([0.02, float("nan")])[1])
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 0.01x3; max(0.03x2, 0.04x1) for both


def predictions_correct(wrong: set) -> np.ndarray:
    return np.array([[i not in wrong for i in range(EVAL)]])


def test_pareto_front_and_cost():
    assert pareto_front([(1, 0.7), (2, 0.8), (3, 0.75), (4, 0.9), (4, 0.85)]) == [0, 1, 3]
    assert price_for("NVIDIA H100 80GB HBM3", {}).usd_per_hour == 2.99
    assert price_for("NVIDIA H200", {}).usd_per_hour == 3.50
    assert price_for("cpu x86_64 x2 threads", {}).usd_per_hour == pytest.approx(0.09)


def test_a_cpu_whose_name_hides_its_model_is_told_apart_by_family_and_model():
    from bench.train.hardware import cpu_model

    zen = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: {}\nmodel\t\t: {}\nmodel name\t: AMD EPYC\n"
    assert cpu_model(zen.format(25, 17)) == "AMD EPYC (family 25 model 17)"
    assert cpu_model(zen.format(25, 17)) != cpu_model(zen.format(23, 49))
    xeon = "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    assert cpu_model(xeon) == "Intel(R) Xeon(R) Platinum 8480+"  # a named model says enough
    assert price_for("NVIDIA H100 80GB HBM3", parse_prices(["h100=2"])).usd_per_hour == 2.0
    assert price_for("anything", parse_prices(["1.5"])).usd_per_hour == 1.5
    assert run_cost(3600, 2, price_for("NVIDIA H100", {})) == pytest.approx(2 * 2.99)


def run_report(*args):
    return subprocess.run([sys.executable, "-m", "bench.report", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_report_recommends_the_cheapest_configuration_as_good_as_the_best(tmp_path):
    report = tmp_path / "constructed.csv"
    constructed_suite(report)
    result = run_report(report, "--price", "H100=2")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "constructed.report.md").read_text()
    recommendation = md.split("## Recommendation")[1].split("##")[0]
    assert recommendation.strip().startswith("**small**")  # not big (dearer), tiny (worse) or one-class (degenerate)
    assert "0.10x the best's $2" in recommendation  # 360 s vs 3600 s at $2 per hour
    assert "Statistically indistinguishable from it: small." in md and "Worse, beyond the noise" in md
    assert "DEGENERATE" in md and "overfits" in md  # one-class; big's loss ratio 0.4 < 0.5
    # tuning cost of an unswept configuration: its 3 seeds; 1,000 -> 25,000 train examples: $2 x 25; (0.9 - 0.5) x 100 / $2
    assert "| big | 3,600 | 1.0000 | $2 | $6 | 20 | $50 |" in md
    html = (tmp_path / "constructed.report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html
    for name in ("pareto-cost", "pareto-params", "pareto-memory"):
        png = tmp_path / "constructed.report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        assert matplotlib.image.imread(png).shape[0] > 300
        assert f"constructed.report/{name}.png" in md


def test_report_shows_seed_values_and_intervals(tmp_path):
    report = tmp_path / "constructed.csv"
    constructed_suite(report)
    assert run_report(report).returncode == 0
    md = (tmp_path / "constructed.report.md").read_text()
    big = next(line for line in md.splitlines() if line.startswith("| big"))
    accuracies = [0.9, 0.9, 0.9]  # 40 shared errors of 400 each seed
    assert "0.900, 0.900, 0.900 (sd 0.000)" in big and f"{np.mean(accuracies):.3f}" in big
    assert "assumed $2.99 per H100 SXM-hour" in md and "ASSUMPTIONS" in md


def test_report_bad_input_is_one_line(tmp_path):
    result = run_report(tmp_path / "missing.csv")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: report {tmp_path / 'missing.csv'} does not exist; pass the CSV that bench/run.py wrote"
    ]
    assert run_report(tmp_path / "x.csv", "--price", "H100=cheap").returncode == 2


def run_compare(*args):
    return subprocess.run([sys.executable, "-m", "bench.compare", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_compare_gate_exit_codes(tmp_path):
    reference = tmp_path / "ref" / "r.csv"
    reference.parent.mkdir()
    constructed_suite(reference)
    same = tmp_path / "same" / "r.csv"
    same.parent.mkdir()
    constructed_suite(same)
    assert run_compare(same, reference).returncode == 0

    slower = tmp_path / "slower" / "r.csv"
    slower.parent.mkdir()
    rng = np.random.default_rng(0)
    for seed in (1, 2, 3):
        base = set(rng.choice(EVAL, 40, replace=False).tolist())
        write_run(slower, "big", seed, base, train_seconds=3600, trainable=100_000_000, samples_per_s=80.0)
    result = run_compare(slower, reference)
    assert result.returncode == 1 and "SLOWER" in result.stdout
    assert run_compare(slower, reference, "--tolerance", "0.25").returncode == 0  # a 20% drop within 25%

    worse = tmp_path / "worse" / "r.csv"
    worse.parent.mkdir()
    for seed in (1, 2, 3):
        write_run(worse, "big", seed, set(range(0, 400, 5)) | set(range(1, 40)), train_seconds=3600, trainable=100_000_000)
    result = run_compare(worse, reference)
    assert result.returncode == 1 and "ACCURACY REGRESSED" in result.stdout
    assert run_compare(worse, tmp_path / "nothing.csv").returncode == 2


def test_accuracy_noise_of_one_run_is_binomial():
    from bench.decision.compare import accuracy_standard_error

    assert accuracy_standard_error([0.8], 400) == pytest.approx(math.sqrt(0.8 * 0.2 / 400))
    # seeds spread more than the eval set's noise: the spread counts
    assert accuracy_standard_error([0.7, 0.8, 0.9], 10_000) == pytest.approx(0.1 / math.sqrt(3))


def test_shards_and_reruns_are_combined_by_run_id(tmp_path):
    constructed_suite(tmp_path / "shard1.csv", seeds=(1,))
    constructed_suite(tmp_path / "shard2.csv", seeds=(2, 3))
    constructed_suite(tmp_path / "rerun.csv", seeds=(3,))  # the same run_ids again: counted once
    result = run_report(tmp_path / "shard1.csv", tmp_path / "shard2.csv", tmp_path / "rerun.csv")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "shard1.report.md").read_text()
    assert "12 ok runs; 4 configurations compete (3 seed(s) each)" in md


def test_readme_block_is_generated(tmp_path):
    report = tmp_path / "constructed.csv"
    constructed_suite(report)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- decision-report:start -->\nold table\n<!-- decision-report:end -->\nafter\n")
    assert run_report(report, "--readme", readme).returncode == 0
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "| small (recommended) | 3 |" in text and "[constructed.report.md](constructed.report.md)" in text
    readme.write_text("no markers\n")
    (tmp_path / "constructed.report.md").unlink()
    result = run_report(report, "--readme", readme)
    assert result.returncode == 2 and "decision-report:start" in result.stderr
    assert not (tmp_path / "constructed.report.md").exists()  # nothing written


# ----------------------------------------------------------------------------- the selection protocol


def write_point(report, seed, learning_rate, validation, wrong, train_seconds, validation_seconds=0.0, device="NVIDIA H100 80GB HBM3"):
    """One run of a learning-rate sweep of the strategy 'swept' (all points share a tuning_id)."""
    config_id = hashlib.sha256(f"swept-{learning_rate}".encode()).hexdigest()[:12]
    run_id = hashlib.sha256(f"swept-{learning_rate}-{seed}".encode()).hexdigest()[:12]
    predictions = predictions_with_errors(wrong)
    started = f"2026-11-26T11:{seed:02d}:{int(learning_rate * 1e4) % 60:02d}+00:00"
    file = write_predictions(report, run_id, started, predictions, LABELS)
    append_row(report, {
        "suite": "constructed", "run_id": run_id, "config_id": config_id, "tuning_id": "sweep-of-swept",
        "sweep_point": f'{{"learning_rate": {learning_rate}}}', "status": "ok", "checkpoint": "org/model-a",
        "strategy": "swept", "strategy_kind": "lora", "seed": seed, "learning_rate": learning_rate,
        "validation_accuracy": validation, "validation_examples": 200, "validation_split": "carved from train",
        "test_accuracy": sum(y == p for _, y, p, _ in predictions) / EVAL, "loss_ratio": 0.9, "train_samples_per_s": 100.0,
        "train_seconds": train_seconds, "validation_seconds": validation_seconds, "num_processes": 1, "device": device,
        "trainable_params": 1000, "peak_memory_mb": 100.0, "train_examples": 1000, "test_examples": EVAL,
        "train_split_examples": 25000, "degenerate": False, "predictions_file": file, "started_at": started, "ended_at": started,
    })


def test_the_point_chosen_is_the_validation_best_not_the_test_best(tmp_path):
    """Point 1e-3 is best on validation, 4e-3 on test: the report takes 1e-3, shows its test
    accuracy, and never the test accuracy of the point it did not choose."""
    report = tmp_path / "constructed.csv"
    for seed in (1, 2):
        write_point(report, seed, 1e-3, validation=0.90, wrong=set(range(80)), train_seconds=100)  # test 0.80
        write_point(report, seed, 4e-3, validation=0.85, wrong=set(range(20)), train_seconds=100)  # test 0.95
    result = run_report(report, "--price", "H100=3.6")
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "constructed.report.md").read_text()
    swept = next(line for line in md.splitlines() if line.startswith("| swept (recommended)"))
    assert "| 0.900 [0.900, 0.900] | 0.800 [0.800, 0.800] |" in swept  # the chosen point's validation, its test accuracy
    assert "0.950" not in md  # the unchosen point's test accuracy appears nowhere
    tuning = md.split("## Tuning")[1].split("\n## ")[0]
    assert "| swept | learning_rate=0.001 | 1, 2 | 0.900 | **chosen** |" in tuning
    assert "| swept | learning_rate=0.004 | 1, 2 | 0.850 |  |" in tuning
    assert "learning_rate = 0.001 was chosen on validation among 2 points" in md
    # tuning cost = every point and seed: 4 runs x 100 s at $3.60/h = $0.40; cost per run $0.10
    assert "the sweep cost $0.4 in all (4 runs)" in md
    png = tmp_path / "constructed.report" / "sweep-swept.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tuning_cost_is_the_sum_over_points_and_seeds_with_validation_time(tmp_path):
    from bench.decision.decide import decide

    report = tmp_path / "constructed.csv"
    seconds = {(1, 1e-3): (100, 10), (1, 2e-3): (200, 20), (1, 4e-3): (50, 5), (2, 2e-3): (300, 30)}
    for (seed, lr), (train, validation) in seconds.items():
        write_point(report, seed, lr, validation={1e-3: 0.8, 2e-3: 0.9, 4e-3: 0.7}[lr], wrong={seed},
                    train_seconds=train, validation_seconds=validation)
    decision = decide([report], parse_prices(["H100=3.6"]))
    (config,) = decision.configs
    assert config.tuned.chosen.values == {"learning_rate": 2e-3}  # chosen on seed 1, the seed every point ran
    assert config.tuned.seeds_compared == [1]
    total = sum(t + v for t, v in seconds.values())
    assert config.tuning_cost_usd == pytest.approx(total / 3600 * 3.6)
    assert config.cost_usd.mean == pytest.approx((220 + 330) / 2 / 3600 * 3.6)  # the chosen point's own runs


def test_rows_from_two_devices_are_refused_unless_asked(tmp_path):
    report = tmp_path / "constructed.csv"
    constructed_suite(report, seeds=(1,))
    write_run(report, "other", 1, {3}, train_seconds=100, trainable=10, device="NVIDIA A100-SXM4-80GB")
    result = run_report(report)
    assert result.returncode == 2 and "2 devices" in result.stderr and "--mixed-devices" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "constructed.report.md").exists()
    assert run_report(report, "--mixed-devices").returncode == 0
    assert "**MIXED DEVICES**" in (tmp_path / "constructed.report.md").read_text()


def test_costs_within_ten_percent_are_a_tie_broken_by_accuracy(tmp_path):
    """'a' is the best; 'b' and 'c' are indistinguishable from it; 'c' is 5% dearer than 'b' and
    more accurate: within the noise of timing, so 'c' is recommended."""
    report = tmp_path / "constructed.csv"
    write_run(report, "a", 1, set(range(40)), train_seconds=1000, trainable=10)
    write_run(report, "b", 1, set(range(44)), train_seconds=100, trainable=10)
    write_run(report, "c", 1, set(range(42)), train_seconds=105, trainable=10)
    assert run_report(report).returncode == 0
    recommendation = (tmp_path / "constructed.report.md").read_text().split("## Recommendation")[1].split("##")[0]
    assert recommendation.strip().startswith("**c**") and "within 10% of the cheapest count as equal" in recommendation


def test_learning_curves_from_several_train_sizes(tmp_path):
    """Rows at 250 and 1,000 training examples: the decision is made at the largest size, the
    learning-curve section shows both."""
    from bench.decision.decide import decide

    report = tmp_path / "constructed.csv"
    for size, errors in ((250, 120), (1000, 40)):
        for strategy, extra in (("a", 0), ("b", 30)):
            config_id = hashlib.sha256(f"{strategy}-{size}".encode()).hexdigest()[:12]
            run_id = hashlib.sha256(f"{strategy}-{size}-1".encode()).hexdigest()[:12]
            predictions = predictions_with_errors(set(range(errors + extra)))
            started = f"2026-11-26T12:{size % 60:02d}:{extra:02d}+00:00"
            append_row(report, {
                "suite": "constructed", "run_id": run_id, "config_id": config_id, "status": "ok", "checkpoint": "org/m",
                "strategy": strategy, "seed": 1, "validation_accuracy": 0.8, "validation_examples": 100,
                "test_accuracy": 1 - (errors + extra) / EVAL, "loss_ratio": 0.9, "train_samples_per_s": 10.0,
                "train_seconds": size / 10, "num_processes": 1, "device": "NVIDIA H100 80GB HBM3", "train_examples": size,
                "test_examples": EVAL, "train_split_examples": 25000, "degenerate": False, "started_at": started,
                "ended_at": started, "predictions_file": write_predictions(report, run_id, started, predictions, LABELS),
            })
    decision = decide([report])
    assert {int(c.first["train_examples"]) for c in decision.configs} == {1000}
    assert {label: sorted(points) for label, points in decision.curves.items()} == {"a": [250, 1000], "b": [250, 1000]}
    assert decision.curves["a"][250].accuracy.mean == pytest.approx(1 - 120 / EVAL)
    assert run_report(report).returncode == 0
    md = (tmp_path / "constructed.report.md").read_text()
    assert "## Learning curves" in md and "| a | 0.700 ($0.0208) | 0.900 ($0.0831) |" in md
    assert (tmp_path / "constructed.report" / "learning-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_the_recommendation_switches_at_the_traffic_a_constructed_case_predicts(tmp_path):
    """big: as accurate, 10x dearer to train, 10x cheaper to serve than small (another
    checkpoint: its serving is its own). Small wins at low traffic, big above the traffic where
    the totals meet (10% tie band: where big's total is within 10% of small's, the more accurate
    big is taken)."""
    from bench.decision.cost import break_even_traffic, serving_cost_per_million
    from bench.decision.decide import COST_TIE, decide
    from bench.decision.serving_cost import served_candidates, switch_points

    report = tmp_path / "r.csv"
    for seed in (1, 2, 3):
        base = set(range(seed, 400, 10))
        write_run(report, "big", seed, base, train_seconds=3600, trainable=100_000_000, serving_per_s=5000.0, checkpoint="org/distilled")
        write_run(report, "small", seed, base | {0}, train_seconds=360, trainable=1_000_000, serving_per_s=500.0, checkpoint="org/large")
    h100 = price_for("NVIDIA H100 80GB HBM3", {})
    train_big, train_small = 2.99, 0.299  # an hour and 6 minutes of an H100 at the assumed $2.99
    serve_big, serve_small = serving_cost_per_million(5000.0, h100), serving_cost_per_million(500.0, h100)
    months = 12
    exact = break_even_traffic((train_small, serve_small), (train_big, serve_big), months)
    assert exact == pytest.approx((train_big - train_small) / ((serve_small - serve_big) * months / 1e6))
    # with the tie band: big_total = (1 + tie) x small_total
    per = lambda usd_per_million: usd_per_million * months / 1e6
    tied = (train_big - (1 + COST_TIE) * train_small) / ((1 + COST_TIE) * per(serve_small) - per(serve_big))

    for traffic, expected in ((tied * 0.99, "small"), (tied * 1.01, "big"), (tied / 100, "small"), (tied * 100, "big")):
        decision = decide([report], traffic=traffic, months=months)
        assert decision.choice.first["strategy"] == expected, traffic
        assert "predictions a month" in decision.why and "to serve" in decision.why
    assert decide([report]).choice.first["strategy"] == "small"  # no traffic: training cost alone, as before
    candidates = served_candidates(decide([report]).configs)
    (start, first), (switch, second) = switch_points(candidates, months, "throughput", COST_TIE)
    assert (start, first.label, second.label) == (0.0, "large / small", "distilled / big") and switch == pytest.approx(tied, rel=2e-3)
    assert switch_points(candidates, months, "throughput", 0.0)[1][0] == pytest.approx(exact, rel=2e-3)

    result = run_report(str(report), "--traffic", f"{tied * 2:.0f}", "--months", str(months))
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "r.report.md").read_text()
    recommendation = text.split("## Recommendation")[1].split("##")[0]
    assert "**distilled / big** at an assumed traffic of" in recommendation
    assert "below" in recommendation and "choose **large / small**" in recommendation
    assert "## Serving" in text and (tmp_path / "r.report" / "pareto-serving.png").stat().st_size > 10_000
    bad = run_report(str(report), "--traffic", "-5")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--traffic" in bad.stderr


def test_configurations_serving_the_same_computation_share_one_serving_figure(tmp_path):
    """Two strategies on one checkpoint serve the same model: measured 40 and 50 predictions/s
    at different times, both are priced at the mean of their runs, and no traffic turns the
    choice on that difference."""
    from bench.decision.decide import decide
    from bench.decision.serving_cost import served_candidates, switch_points

    report = tmp_path / "r.csv"
    for seed in (1, 2, 3):
        base = set(range(seed, 400, 10))
        write_run(report, "full", seed, base, train_seconds=600, trainable=100_000_000, serving_per_s=40.0)
        write_run(report, "merged-lora", seed, base | {0}, train_seconds=500, trainable=1_000_000, serving_per_s=50.0)
    decision = decide([report], traffic=1e9)
    full, lora = sorted(decision.configs, key=lambda c: c.label)
    assert full.serving.samples_per_s == lora.serving.samples_per_s == pytest.approx(45.0)
    assert (full.serving.measured_samples_per_s, lora.serving.measured_samples_per_s) == (40.0, 50.0)
    assert full.serving.pooled_with == ("merged-lora",) and full.serving.spread == pytest.approx(0.25)
    # Unpooled, merged-lora would serve 20% cheaper and win at high traffic on drift alone. Pooled,
    # serving is the same: at high traffic the totals tie and the more accurate full is taken ...
    assert decision.choice.label == "full" and "Totals within 10%" in decision.why
    # ... and at low traffic the one cheaper to train
    assert decide([report], traffic=1e3).choice.label == "merged-lora"
    (_, low), (_, high) = switch_points(served_candidates(decision.configs), 12, "throughput", 0.1)
    assert (low.label, high.label) == ("merged-lora", "full")


def test_the_report_names_the_weights_it_compared_and_warns_when_a_name_moved(tmp_path):
    from bench.decision.decide import decide
    from bench.document.prose import weights

    report = tmp_path / "pinned.csv"
    for seed in (1, 2):
        write_run(report, "big", seed, {seed}, train_seconds=60, trainable=10, revision="a" * 40)
        write_run(report, "small", seed, {seed}, train_seconds=30, trainable=5, revision="a" * 40 if seed == 1 else "b" * 40)
    decision = decide([report])
    text = weights(decision.configs)
    assert "model-a at " + "a" * 40 + ", " + "b" * 40 in text and "DIFFERENT WEIGHTS" in text and "NAME@REVISION" in text
    assert run_report(report).returncode == 0
    assert "DIFFERENT WEIGHTS" in (tmp_path / "pinned.report.md").read_text()
    same = tmp_path / "same.csv"
    write_run(same, "big", 1, {1}, train_seconds=60, trainable=10, revision="a" * 40)
    assert weights(decide([same]).configs) == " Weights: model-a at " + "a" * 40 + "."
