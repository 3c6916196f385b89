"""Transferability scores (bench/decision/transferability.py) against values worked out
independently: LogME is the maximum over (alpha, beta) of the exact log evidence of Bayesian
linear regression, found here by scipy's optimiser on scipy's multivariate normal density; the
H-score of a one-dimensional feature is the share of its variance the class means explain,
worked out by hand."""

import numpy as np
import pytest
from scipy import optimize, stats
from sklearn.covariance import ledoit_wolf_shrinkage

from bench.decision.transferability import h_score, logme, probe, shrunk_h_score, spread


def exact_max_evidence(f: np.ndarray, y: np.ndarray) -> float:
    """max over alpha, beta of log N(y | 0, I / beta + F F^T / alpha), per example."""
    n = len(y)

    def negative(log_precisions):
        alpha, beta = np.exp(log_precisions)
        covariance = np.eye(n) / beta + f @ f.T / alpha
        return -stats.multivariate_normal(mean=np.zeros(n), cov=covariance).logpdf(y)

    best = optimize.minimize(negative, x0=[0.0, 0.0], method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    return -best.fun / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logme_is_the_maximum_evidence_averaged_over_classes(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=60)
    features = rng.normal(size=(60, 5)) + labels[:, None] * np.array([1.0, -0.5, 0.0, 0.3, 0.0])
    expected = np.mean([exact_max_evidence(features, (labels == k).astype(float)) for k in range(3)])
    assert logme(features, labels) == pytest.approx(expected, abs=2e-3)


def test_logme_and_h_score_rank_informative_features_above_noise():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=400)
    informative = rng.normal(size=(400, 8)) + 2.0 * labels[:, None]
    noise = rng.normal(size=(400, 8))
    assert logme(informative, labels) > logme(noise, labels)
    assert h_score(informative, labels) > 10 * h_score(noise, labels)


def test_h_score_of_one_feature_worked_out_by_hand():
    # f = 0, 2 (class 0) and 1, 3 (class 1): variance 1.25; class means -0.5, +0.5 around 1.5: 0.25
    assert h_score(np.array([[0.0], [2.0], [1.0], [3.0]]), np.array([0, 0, 1, 1])) == pytest.approx(0.2)


def test_the_shrunk_h_score_of_one_feature_is_the_h_score_times_one_minus_the_shrinkage():
    # one dimension: the Ledoit-Wolf target is the variance itself, so only the (1 - a) factor remains
    f, y = np.array([[0.0], [2.0], [1.0], [3.0], [0.5], [2.5]]), np.array([0, 0, 1, 1, 0, 1])
    shrinkage = ledoit_wolf_shrinkage(f - f.mean(axis=0), assume_centered=True)
    assert shrunk_h_score(f, y) == pytest.approx((1 - shrinkage) * h_score(f, y))


def test_the_shrunk_h_score_ranks_where_the_plain_one_cannot():
    """Fewer examples than dimensions: the plain H-score's covariance is singular and every
    feature set explains everything; the shrunk one still ranks signal above noise. Constant
    features score 0."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=40)
    informative = rng.normal(size=(40, 64)) + 1.5 * labels[:, None]
    noise = rng.normal(size=(40, 64))
    assert shrunk_h_score(informative, labels) > 3 * shrunk_h_score(noise, labels)
    assert h_score(noise, labels) == pytest.approx(h_score(informative, labels), rel=0.05)
    assert shrunk_h_score(np.ones((40, 8)), labels) == 0.0


def test_the_probe_is_a_validation_accuracy_with_its_wilson_interval():
    rng = np.random.default_rng(9)
    labels, held_out = rng.integers(0, 2, size=200), rng.integers(0, 2, size=100)
    separable = lambda y: rng.normal(size=(len(y), 6)) + 4.0 * y[:, None]
    accuracy, low, high = probe(separable(labels), labels, separable(held_out), held_out)
    assert accuracy == 1.0 and low < 1.0 == high
    accuracy, low, high = probe(rng.normal(size=(200, 6)), labels, rng.normal(size=(100, 6)), held_out)
    assert low < 0.5 < high and 0.3 < accuracy < 0.7  # noise: chance, within its interval


def test_the_bootstrap_interval_holds_the_score():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=120)
    features = rng.normal(size=(120, 4)) + labels[:, None]
    score, low, high = spread("hscore", features, labels, resamples=100)
    assert low <= score <= high and high - low > 0


def test_a_checkpoint_on_the_cost_frontier_is_never_screened_out():
    from bench.decision.screening import Candidate, screen

    big = Candidate("big", score=-0.40, low=-0.42, high=-0.38, cost=110e6)
    base = Candidate("base", score=-0.45, low=-0.47, high=-0.43, cost=22e6)
    tiny = Candidate("tiny", score=-0.70, low=-0.73, high=-0.67, cost=8e6)  # weakest, but cheapest: frontier
    control = Candidate("reinit", score=-0.69, low=-0.72, high=-0.66, cost=22e6)  # base scores higher at the same cost
    close = Candidate("close", score=-0.46, low=-0.50, high=-0.44, cost=30e6)  # dominated, but not clearly apart
    verdicts = {v.candidate.checkpoint: v for v in screen([tiny, control, big, base, close], keep=2)}
    assert verdicts["big"].kept and verdicts["base"].kept
    assert verdicts["tiny"].kept and "frontier" in verdicts["tiny"].reason
    assert verdicts["close"].kept and "not clearly apart" in verdicts["close"].reason
    assert not verdicts["reinit"].kept and "base scores higher at no more cost" in verdicts["reinit"].reason


def test_agreement_ranks_every_screen_and_the_size_prior_against_the_fine_tuned_results():
    """Four checkpoints, fine-tuned best to worst a, b, c, d: a screen ranking them so has tau 1,
    the size prior (d the largest) ranks them backwards, and the chosen screen's taus come first."""
    from types import SimpleNamespace

    from bench.decision.screening import SIZE_PRIOR, agreement

    fine_tuned = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}
    configs = [SimpleNamespace(first={"checkpoint": k}, validation=SimpleNamespace(mean=v),
                               accuracy=SimpleNamespace(mean=v - 0.01)) for k, v in fine_tuned.items()]
    rows = [{"checkpoint": k, "score_name": "logme", "score": -i, "logme": -i, "hscore": i, "hscore_layers": -i,
             "probe": None, "parameters": 10 + i} for i, k in enumerate(fine_tuned)]
    taus = agreement(rows, configs)
    assert taus["chosen"] == "logme" and taus["validation"] == pytest.approx(1.0) and taus["test"] == pytest.approx(1.0)
    assert taus["screens"]["hscore-layers"]["validation"] == pytest.approx(1.0)
    assert taus["screens"]["hscore"]["validation"] == pytest.approx(-1.0)
    assert taus["screens"][SIZE_PRIOR]["validation"] == pytest.approx(-1.0)
    assert "probe" not in taus["screens"]  # not computed (no validation split): not ranked
    assert agreement(rows[:2], configs)["validation"] is None  # two checkpoints: no ranking to speak of


def test_logme_of_features_that_are_all_zero_is_the_evidence_of_noise_alone():
    """Nothing to explain a class indicator y: its evidence is N(y | 0, I / beta) at the best
    beta, n / |y|^2, so a variance of the class's share (a checkpoint whose features are dead)."""
    labels = np.array([0, 1, 1, 0, 1, 1])
    expected = np.mean([stats.multivariate_normal(mean=np.zeros(6), cov=np.eye(6) * ((labels == k).mean())).logpdf(
        (labels == k).astype(float)) / 6 for k in (0, 1)])
    assert logme(np.zeros((6, 3)), labels) == pytest.approx(expected)
