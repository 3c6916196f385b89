"""Statistics for the decision report: a configuration's seeds summarised with a bootstrap
interval, paired tests of two configurations on the same evaluation examples and over shared
seeds, and the Holm correction over several comparisons. scipy and statsmodels do the work.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

CONFIDENCE = 0.95
RESAMPLES = 10_000
RANDOM_SEED = 0  # the report is reproducible: the same CSV gives the same intervals


@dataclasses.dataclass(frozen=True)
class Summary:
    """One metric over a configuration's seeds."""

    values: tuple[float, ...]
    mean: float
    std: float | None  # sample standard deviation (n - 1); None for one seed
    low: float | None  # 95% bootstrap interval of the mean; None for one seed
    high: float | None

    @property
    def n(self) -> int:
        return len(self.values)


def summarize(values) -> Summary:
    """Mean, standard deviation and a 95% bootstrap interval of the mean (BCa, falling back to
    the percentile method when BCa is undefined, e.g. when most resamples are equal)."""
    values = tuple(float(v) for v in values)
    if not values:
        raise ValueError("no values to summarise")
    data = np.asarray(values)
    mean = float(data.mean())
    if len(values) < 2:
        return Summary(values, mean, None, None, None)
    std = float(data.std(ddof=1))
    if std == 0.0:
        return Summary(values, mean, 0.0, mean, mean)
    low, high = _bootstrap_interval(data)
    return Summary(values, mean, std, low, high)


def _bootstrap_interval(data: np.ndarray) -> tuple[float, float]:
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns when BCa is degenerate; we then fall back
            result = stats.bootstrap(
                (data,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES, method=method,
                rng=np.random.default_rng(RANDOM_SEED),
            )
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return float(data.min()), float(data.max())


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """Configuration A against B on the same evaluation examples."""

    test: str  # "McNemar exact" or "paired bootstrap"
    p_value: float
    difference: float  # accuracy of A - accuracy of B (means over seeds)
    examples: int


def paired_example_test(correct_a: np.ndarray, correct_b: np.ndarray, alternative: str = "two-sided") -> PairedTest:
    """`correct_x`: seeds x examples, True where a run got the example right (the same examples,
    in the same order, for both). One seed each: McNemar's exact test on the discordant pairs.
    Several: a paired bootstrap over examples of the difference in accuracy, each example's
    correctness averaged over the configuration's seeds (p from the resamples).
    `alternative="less"`: one-sided, is A's accuracy below B's? (McNemar's exact one-sided is the
    binomial test of B's share of the discordant pairs above one half; the bootstrap's p is the
    share of resamples where A is not below B.)"""
    a, b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the configurations were scored on different examples ({a.shape[1]} vs {b.shape[1]})")
    one_sided, examples = alternative == "less", a.shape[1]
    suffix = ", one-sided" if one_sided else ""
    per_example = a.mean(axis=0) - b.mean(axis=0)
    difference = float(per_example.mean())
    if a.shape[0] == 1 and b.shape[0] == 1:
        a_only = int(((a[0] == 1) & (b[0] == 0)).sum())
        b_only = int(((a[0] == 0) & (b[0] == 1)).sum())
        if a_only + b_only == 0:
            p_value = 1.0
        elif one_sided:
            p_value = float(stats.binomtest(b_only, a_only + b_only, 0.5, alternative="greater").pvalue)
        else:
            p_value = float(mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)
        return PairedTest("McNemar exact" + suffix, p_value, difference, examples)
    if not per_example.any():
        return PairedTest("paired bootstrap" + suffix, 1.0, 0.0, examples)
    rng = np.random.default_rng(RANDOM_SEED)
    means = np.array([per_example[rng.integers(0, examples, examples)].mean() for _ in range(RESAMPLES)])
    if one_sided:
        p_value = ((means >= 0).sum() + 1) / (RESAMPLES + 1)
    else:
        p_value = min(1.0, 2 * (min((means <= 0).sum(), (means >= 0).sum()) + 1) / (RESAMPLES + 1))
    return PairedTest("paired bootstrap" + suffix, float(p_value), difference, examples)


def above_rate_p_value(correct: np.ndarray, rate: float) -> float:
    """One-sided: is the accuracy above `rate` (the majority class's share)? The exact binomial
    test over every run's examples together."""
    correct = np.asarray(correct, dtype=bool)
    return float(stats.binomtest(int(correct.sum()), correct.size, rate, alternative="greater").pvalue)


def paired_seed_test(accuracy_a: dict, accuracy_b: dict) -> tuple[float, int] | None:
    """A paired t-test over the seeds both configurations ran (seed -> accuracy): whether A
    beats B by more than seed-to-seed variation. (p, seeds), or None with fewer than 3 shared
    seeds; p is NaN when the difference is the same for every seed (no spread to test against)."""
    seeds = sorted(set(accuracy_a) & set(accuracy_b))
    if len(seeds) < 3:
        return None
    a = np.array([accuracy_a[s] for s in seeds])
    b = np.array([accuracy_b[s] for s in seeds])
    if np.allclose(a, b):
        return 1.0, len(seeds)
    if np.ptp(a - b) < 1e-12:  # the same difference every seed: no spread, a t-test is undefined
        return float("nan"), len(seeds)
    return float(stats.ttest_rel(a, b).pvalue), len(seeds)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (family-wise error over the comparisons with the best); an
    undefined (NaN) p-value stays undefined and does not count as a comparison."""
    defined = [i for i, p in enumerate(p_values) if not np.isnan(p)]
    adjusted = [float("nan")] * len(p_values)
    if defined:
        for i, p in zip(defined, multipletests([p_values[i] for i in defined], method="holm")[1]):
            adjusted[i] = float(p)
    return adjusted
