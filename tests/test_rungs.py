"""The rung rule of halving from rows alone, no training: a rung does not decide while no point
beats the majority class (the decision moves one epoch on), a point stops only when a paired
test on the same validation examples says it is clearly worse than the weakest point kept, and
the launchers' next step follows from the report's rows (bench/launch/halving.py)."""

import json

import numpy as np
import pytest
import yaml
from conftest import write_suite

from bench.decision.selection import RungPoint, rung_decision
from bench.decision.stats import paired_example_test
from bench.launch.halving import Action, next_step
from bench.results.outcomes import majority_rate, pack_outcomes, unpack_outcomes
from bench.suite.load import load_suite

EXAMPLES = 500


def outcomes(accuracy: float, seed: int, examples: int = EXAMPLES) -> np.ndarray:
    """`examples` bools with exactly round(accuracy x examples) True, in a seeded order."""
    right = np.zeros(examples, dtype=bool)
    right[: round(accuracy * examples)] = True
    return np.random.default_rng(seed).permutation(right)


def point(name: str, accuracy: float, seed: int) -> RungPoint:
    correct = outcomes(accuracy, seed)
    return RungPoint(name, float(correct.mean()), correct[None, :])


def test_outcomes_round_trip_through_their_packed_text():
    for examples in (1, 7, 8, 9, 500):
        correct = outcomes(0.6, examples, examples)
        assert (unpack_outcomes(pack_outcomes(correct), examples) == correct).all()
    assert len(pack_outcomes(outcomes(0.6, 0))) == 84  # 500 examples: 63 bytes
    with pytest.raises(ValueError, match="not the outcomes of 20 examples"):
        unpack_outcomes(pack_outcomes(outcomes(0.5, 0, 8)), 20)
    assert majority_rate([0, 1, 1, 1]) == 0.75


def test_no_rung_decides_while_every_point_is_at_the_majority_rate():
    """SST-2's LoRA sweep after one epoch: all four rates near the majority class's 0.58."""
    points = [point(f"lr{i}", a, i) for i, a in enumerate((0.58, 0.582, 0.578, 0.58))]
    decision = rung_decision(points, eta=2, level=0.1, majority=0.58)
    assert not decision.decided and decision.continuing == ["lr0", "lr1", "lr2", "lr3"]
    assert "no point is above the majority class's rate 0.5800" in decision.reasons["lr0"]
    # one point clearly above it: the rung decides
    points[3] = point("lr3", 0.66, 3)
    assert rung_decision(points, eta=2, level=0.1, majority=0.58).decided


def test_points_tied_at_the_cut_go_on_and_clearly_worse_ones_stop():
    points = [point("a", 0.80, 1), point("b", 0.79, 2), point("c", 0.78, 3), point("d", 0.60, 4)]
    decision = rung_decision(points, eta=2, level=0.1, majority=0.5)
    assert decision.decided and decision.cut == ["a", "b"]
    assert decision.continuing == ["a", "b", "c"]  # c: within noise of b, the weakest point kept
    assert "not clearly worse, it goes on" in decision.reasons["c"]
    assert "clearly worse (McNemar exact, one-sided p" in decision.reasons["d"]
    # the same figures on 60 examples: nothing is clearly apart, every point goes on
    few = [RungPoint(p.config_id, p.accuracy, p.correct[:, :60]) for p in points]
    assert rung_decision(few, eta=2, level=0.1, majority=0.5).continuing == ["a", "b", "c", "d"]
    # a stricter level keeps more; a failed point (no accuracy) is out; old rows without outcomes go on
    assert rung_decision(points, eta=2, level=1e-30, majority=0.5).continuing == ["a", "b", "c", "d"]
    failed = rung_decision(points[:3] + [RungPoint("d", None)], eta=2, level=0.1, majority=0.5)
    assert failed.continuing == ["a", "b", "c"] and "d" not in failed.reasons
    old = rung_decision([RungPoint(p.config_id, p.accuracy) for p in points], eta=2, level=0.1, majority=0.5)
    assert old.continuing == ["a", "b", "c", "d"] and "no per-example outcomes" in old.reasons["d"]


def test_a_tie_in_the_cut_goes_to_the_earlier_point():
    points = [point("a", 0.7, 1), point("b", 0.7, 1), point("c", 0.5, 2)]
    assert rung_decision(points, eta=3, level=0.1, majority=0.5).cut == ["a"]


def worse(a, b):
    return paired_example_test(a, b, alternative="less")


def test_the_one_sided_test_is_mcnemars_exact_on_discordant_pairs():
    a = np.array([1, 0, 0, 0, 0, 0, 1, 1], dtype=bool)  # right on 3
    b = np.array([1, 1, 1, 1, 1, 1, 0, 1], dtype=bool)  # right on 7; discordant: 5 for b, 1 for a
    test = worse(a[None, :], b[None, :])
    assert test.p_value == pytest.approx(7 / 64)  # P(X >= 5), X ~ Binomial(6, 1/2)
    assert worse(b[None, :], a[None, :]).p_value == pytest.approx(63 / 64)
    assert test.difference == pytest.approx(-0.5)
    several = worse(np.stack([a, a]), np.stack([b, b]))
    assert several.test == "paired bootstrap, one-sided" and several.p_value < 0.1


@pytest.fixture
def sweep(tmp_path, bert_dir, data_dir):
    """A suite of one 4-point sweep, 4 epochs, halved at epoch 1 (eta 2): its cells, no training."""
    strategies = [{"name": "full", "kind": "full", "sweep": {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3]}}]
    path = write_suite(tmp_path, [bert_dir], data_dir, strategies=strategies, epochs=4, dataset={"validation_size": 40})
    raw = yaml.safe_load(path.read_text())
    raw["halving"] = {"eta": 2, "rungs": [1]}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    suite = load_suite(str(path))
    return suite, suite.cells()


def paused(cell, accuracies: list[float], seed: int) -> dict:
    """A paused row after len(accuracies) epochs, as the launcher writes it."""
    history = [{"epoch": e, "validation_accuracy": a, "validation_correct": pack_outcomes(outcomes(a, seed + e))}
               for e, a in enumerate(accuracies, start=1)]
    return {"run_id": cell.run_id(), "config_id": cell.config_id(), "status": "paused", "epochs_run": len(history),
            "validation_accuracy": accuracies[-1], "validation_examples": EXAMPLES, "validation_majority_rate": 0.5,
            "history": json.loads(json.dumps(history))}


def test_the_next_step_follows_from_the_rows(sweep):
    suite, cells = sweep
    rungs = suite.rungs(cells[0])
    assert next_step(cells[0], cells, [], rungs, suite.halving).action is Action.TRAIN
    # every point at the majority rate after epoch 1: all train a second epoch, and the rung is decided there
    rows = [paused(c, [0.5], i) for i, c in enumerate(cells)]
    steps = [next_step(c, cells, rows, rungs, suite.halving) for c in cells]
    assert [(s.action, s.start, s.until) for s in steps] == [(Action.TRAIN, 1, 2)] * 4
    # one has paused again, the others have not yet: it waits
    rows.append(paused(cells[0], [0.5, 0.80], 0))
    assert next_step(cells[0], cells, rows, rungs, suite.halving).action is Action.WAIT
    # all at epoch 2: 0.80, 0.79 (the cut), 0.78 (tied: goes on), 0.60 (clearly worse: stops)
    rows += [paused(c, [0.5, a], i) for i, (c, a) in enumerate(zip(cells[1:], (0.79, 0.78, 0.60)), start=1)]
    steps = [next_step(c, cells, rows, rungs, suite.halving) for c in cells]
    assert [(s.action, s.start, s.until) for s in steps[:3]] == [(Action.TRAIN, 2, 4)] * 3
    assert steps[3].action is Action.STOP and steps[3].row["status"] == "stopped"
    assert steps[3].row["error"].startswith("stopped by halving at epoch 2 of 4: validation 0.6000 against 0.7900")
    # its stopped row written, it is done; a rung never reached by the end (never learned) lets every point finish
    assert next_step(cells[3], cells, rows + [steps[3].row], rungs, suite.halving).action is Action.DONE
    stuck = [paused(c, [0.5, 0.5, 0.5], i) for i, c in enumerate(cells)]
    assert {(s.action, s.until) for s in (next_step(c, cells, stuck, rungs, suite.halving) for c in cells)} == {(Action.TRAIN, 4)}
