"""Transferability scores (bench/decision/transferability.py) against values worked out
independently: LogME is the maximum over (alpha, beta) of the exact log evidence of Bayesian
linear regression, found here by scipy's optimiser on scipy's multivariate normal density; the
H-score of a one-dimensional feature is the share of its variance the class means explain,
worked out by hand."""

import numpy as np
import pytest
from scipy import optimize, stats

from bench.decision.transferability import h_score, logme, spread


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
