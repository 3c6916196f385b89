"""Transferability scores: how well a checkpoint's frozen features suit a labelled task, from
the features alone, in seconds instead of a fine-tuning run.

- LogME (You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021): the log of the maximum evidence of a Bayesian linear model
  from the features to each class's one-vs-rest target, per example, averaged over classes.
  The evidence is maximised over the prior precision alpha and the noise precision beta by the
  fixed-point iteration of the paper's Algorithm 1 (MacKay's), computed once in the
  eigenbasis of F^T F. Higher is better; the scale is per example and comparable between
  checkpoints on the same examples.
- H-score (Bao, Li, Huang, Gao, Ren and Yu, "An Information-Theoretic Approach to
  Transferability in Task Transfer Learning", ICIP 2019): tr(cov(f)^-1 cov(E[f | y])), how much
  of the features' variance the class means explain. Higher is better.

- Shrunk H-score (Ibrahim, Ponomareva and Cai, "Newer is not always better: rethinking
  transferability metrics", NeurIPS 2021), the default of TransformerRanker (Garbaciauskas, Ploner
  and Akbik, ACL Findings 2024): H-score with the features' covariance shrunk by Ledoit-Wolf
  (scikit-learn), stable where there are few examples per dimension. `hscore-layers` scores it on
  the mean over every layer's mean-pooled tokens (TransformerRanker's layer mean), not on the
  last layer alone.
- A linear probe: the validation accuracy of a logistic regression on the standardised frozen
  features (scikit-learn), its regularisation chosen on validation from a short sweep: what a
  head on the frozen backbone would reach, scored on the examples every choice is made on.

`spread` gives a bias-corrected bootstrap interval over examples (scipy.stats.bootstrap), and the
probe a Wilson interval over the validation examples, so that a screen drops a checkpoint only
when its score is clearly apart.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, stats
from sklearn.covariance import ledoit_wolf
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from statsmodels.stats.proportion import proportion_confint

MAX_ITERATIONS = 11  # the paper's: it converges in two or three steps, at most ten
TOLERANCE = 1e-3  # relative change of alpha / beta at which the iteration stops


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of `features` (N x D) for integer `labels` (N,): the mean over classes of the
    maximum log evidence per example of a Bayesian linear regression onto the class indicator."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    n, d = f.shape
    eigenvalues, eigenvectors = np.linalg.eigh(f.T @ f)  # F^T F = V diag(s) V^T
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    evidences = [_max_evidence((y == k).astype(np.float64), f, eigenvalues, eigenvectors, n, d) for k in np.unique(y)]
    return float(np.mean(evidences))


def _max_evidence(target: np.ndarray, f: np.ndarray, s: np.ndarray, v: np.ndarray, n: int, d: int) -> float:
    """Maximum over (alpha, beta) of log p(target | F, alpha, beta) / N, by the fixed point."""
    if not s.any():  # features that are all zero explain nothing: the evidence of noise alone, at its best beta
        beta = n / max(float(target @ target), 1e-12)
        return 0.5 * np.log(beta) - 0.5 - 0.5 * np.log(2 * np.pi)
    projected = v.T @ (f.T @ target)  # V^T F^T y
    alpha, beta = 1.0, 1.0
    for _ in range(MAX_ITERATIONS):
        gamma = float((beta * s / (alpha + beta * s)).sum())  # effective number of parameters
        mean = v @ (beta * projected / (alpha + beta * s))  # posterior mean of the weights
        weight_norm = float(mean @ mean)
        residual = float(((target - f @ mean) ** 2).sum())
        new_alpha = gamma / (weight_norm + 1e-5)
        new_beta = (n - gamma) / (residual + 1e-5)
        converged = abs(new_alpha - alpha) / alpha < TOLERANCE and abs(new_beta - beta) / beta < TOLERANCE
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    mean = v @ (beta * projected / (alpha + beta * s))
    weight_norm = float(mean @ mean)
    residual = float(((target - f @ mean) ** 2).sum())
    evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
                - beta / 2 * residual - alpha / 2 * weight_norm - n / 2 * np.log(2 * np.pi))
    return evidence / n


def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: tr(cov(f)^+ cov(E[f | y])), the pseudo-inverse keeping it defined for features
    of lower rank than their dimension."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    f = f - f.mean(axis=0)
    class_means = np.zeros_like(f)
    for k in np.unique(y):
        class_means[y == k] = f[y == k].mean(axis=0)
    covariance = f.T @ f / len(f)
    between = class_means.T @ class_means / len(f)
    return float(np.trace(np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ between))


def shrunk_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score with a Ledoit-Wolf covariance: tr(cov_a(f)^-1 (1 - a) cov(E[f | y])), a the
    shrinkage scikit-learn estimates from the features. cov(E[f | y]) has one term per class,
    so the trace is (1 - a) sum_k (n_k / n) m_k^T cov_a^-1 m_k: a Cholesky solve for the class
    means instead of an inverse (the bootstrap interval computes it hundreds of times)."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    f = f - f.mean(axis=0)
    covariance, shrinkage = ledoit_wolf(f, assume_centered=True)  # no precision matrix: the solve below needs none
    if not np.trace(covariance) > 0:
        return 0.0  # constant features: no variance, nothing explained
    classes = np.unique(y)
    means = np.stack([f[y == k].mean(axis=0) for k in classes], axis=1)  # d x classes
    shares = np.array([(y == k).mean() for k in classes])
    try:
        solved = linalg.cho_solve(linalg.cho_factor(covariance), means)
    except linalg.LinAlgError:  # singular (no shrinkage, fewer examples than dimensions)
        solved = np.linalg.pinv(covariance, rcond=1e-10, hermitian=True) @ means
    return float((1 - shrinkage) * np.sum(shares * np.einsum("dk,dk->k", means, solved)))


PROBE_C = (0.01, 0.1, 1.0)  # inverse regularisation strengths the probe chooses from, on validation


def probe(train: np.ndarray, train_labels: np.ndarray, validation: np.ndarray, validation_labels: np.ndarray,
          confidence: float = 0.95) -> tuple[float, float, float]:
    """(validation accuracy, low, high) of the best logistic regression on standardised features
    over PROBE_C, with a Wilson interval over the validation examples."""
    best = 0
    for c in PROBE_C:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(train, train_labels)
        best = max(best, int((model.predict(validation) == validation_labels).sum()))
    low, high = proportion_confint(best, len(validation_labels), alpha=1 - confidence, method="wilson")
    return best / len(validation_labels), float(low), float(high)


SCORES = {"logme": logme, "hscore": h_score, "hscore-layers": shrunk_h_score}


def spread(score: str, features: np.ndarray, labels: np.ndarray, resamples: int = 200, seed: int = 0,
           confidence: float = 0.95) -> tuple[float, float, float]:
    """(score, low, high): the score and a bootstrap interval over examples (scipy.stats.
    bootstrap), shifted by the bootstrap's estimate of the score's bias. Both scores read a
    resample's repeated examples as extra evidence and come out higher on it (H-score on 64
    examples: 0.94 whole, a percentile interval of [0.96, 0.99]); the shift puts the interval
    back around the score, so two checkpoints are compared on their spread, not on that bias."""
    function = SCORES[score]
    value = function(features, labels)
    index = np.arange(len(labels))
    result = stats.bootstrap((index,), lambda i: function(features[i], labels[i]), vectorized=False,
                             n_resamples=resamples, confidence_level=confidence, method="percentile",
                             random_state=np.random.default_rng(seed))
    bias = float(np.mean(result.bootstrap_distribution)) - value
    return value, float(result.confidence_interval.low) - bias, float(result.confidence_interval.high) - bias
