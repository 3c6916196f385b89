"""A regression gate: compare a new report with a reference, configuration by configuration.

    python -m bench.compare reports/new.csv reports/reference.csv [--tolerance 0.10]

Only each sweep's chosen point is compared (bench/decision/selection.py: chosen on validation, as the
decision report chooses); rows are matched on `config_id` (the configuration without the
seed; never on time), their seeds averaged. Exit 1 when a configuration's accuracy fell below the reference's by more
than the noise (1.96 standard errors of the difference: from the seeds' spread when both
have 2 or more seeds, else from the binomial noise of the evaluation set), or its throughput
fell by more than the tolerance; exit 0 otherwise; exit 2 on bad input. Prints what moved.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from bench.cli import OneLineParser, one_line_errors
from bench.decision.configs import config_labels
from bench.decision.rows import group_by_config, load_runs
from bench.decision.selection import choose
from bench.errors import BenchError

Z = 1.96  # two-sided 95%


@dataclasses.dataclass(frozen=True)
class Change:
    label: str
    accuracy_ref: float
    accuracy_new: float
    accuracy_noise: float  # the drop that still counts as noise
    speed_ref: float | None
    speed_new: float | None
    speed_column: str
    same_device: bool

    @property
    def accuracy_regressed(self) -> bool:
        return self.accuracy_ref - self.accuracy_new > self.accuracy_noise

    def speed_regressed(self, tolerance: float) -> bool:
        if not self.same_device or not self.speed_ref or self.speed_new is None:
            return False
        return self.speed_new < self.speed_ref * (1 - tolerance)


def accuracy_standard_error(accuracies: list[float], test_examples: int) -> float:
    """Standard error of a configuration's mean accuracy: over its seeds when it has several,
    else the binomial error of one run on `test_examples` examples."""
    n = len(accuracies)
    mean = sum(accuracies) / n
    if n >= 2:
        variance = sum((a - mean) ** 2 for a in accuracies) / (n - 1)
        binomial = mean * (1 - mean) / test_examples / n
        return math.sqrt(max(variance / n, binomial))  # 3 identical seeds do not make the eval set noiseless
    return math.sqrt(mean * (1 - mean) / test_examples)


def changes(new_rows: list[dict], reference_rows: list[dict]) -> tuple[list[Change], list[str], list[str]]:
    """(matched configurations, labels only in new, labels only in the reference)."""
    new, ref = group_by_config(new_rows), group_by_config(reference_rows)
    labels = config_labels({**ref, **new})
    matched = []
    for config_id in sorted(set(new) & set(ref), key=lambda c: labels[c]):
        n, r = new[config_id], ref[config_id]
        acc_n, acc_r = [float(x["test_accuracy"]) for x in n], [float(x["test_accuracy"]) for x in r]
        se = math.hypot(accuracy_standard_error(acc_n, int(n[0]["test_examples"])),
                        accuracy_standard_error(acc_r, int(r[0]["test_examples"])))
        column = "steady_train_samples_per_s" if _mean(n, "steady_train_samples_per_s") and _mean(r, "steady_train_samples_per_s") else "train_samples_per_s"
        matched.append(Change(
            label=labels[config_id],
            accuracy_ref=sum(acc_r) / len(acc_r),
            accuracy_new=sum(acc_n) / len(acc_n),
            accuracy_noise=Z * se,
            speed_ref=_mean(r, column),
            speed_new=_mean(n, column),
            speed_column=column,
            same_device={x.get("device") for x in n} == {x.get("device") for x in r},
        ))
    only_new = sorted(labels[c] for c in set(new) - set(ref))
    only_ref = sorted(labels[c] for c in set(ref) - set(new))
    return matched, only_new, only_ref


def _mean(rows: list[dict], column: str) -> float | None:
    """The mean of a typed column over the rows; None when a row lacks it (an older row)."""
    values = [row.get(column) for row in rows]
    return None if not values or None in values else sum(values) / len(values)


def print_table(matched: list[Change], tolerance: float) -> None:
    header = f"{'configuration':32} {'accuracy ref -> new':22} {'change':>8} {'noise':>7} {'samples/s ref -> new':24} {'ratio':>6}  verdict"
    print(header)
    print("-" * len(header))
    for c in matched:
        verdicts = []
        if c.accuracy_regressed:
            verdicts.append("ACCURACY REGRESSED")
        if c.speed_regressed(tolerance):
            verdicts.append("SLOWER")
        if not c.same_device:
            verdicts.append("speed not compared: other device")
        speed = f"{c.speed_ref:,.1f} -> {c.speed_new:,.1f}" if c.speed_ref and c.speed_new is not None else "n/a"
        ratio = f"{c.speed_new / c.speed_ref:.2f}x" if c.speed_ref and c.speed_new is not None else ""
        print(f"{c.label[:32]:32} {c.accuracy_ref:.4f} -> {c.accuracy_new:.4f}     {(c.accuracy_new - c.accuracy_ref) * 100:+7.2f}p "
              f"{c.accuracy_noise * 100:6.2f}p {speed:24} {ratio:>6}  {', '.join(verdicts) or 'ok'}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path, help="the report to check")
    parser.add_argument("reference", type=Path, help="the report to check it against")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed throughput drop, a fraction (default 0.10)")
    args = parser.parse_args(argv)
    if not 0 <= args.tolerance < 1:
        parser.error(f"--tolerance must be a fraction in [0, 1), got {args.tolerance}")
    return args


def chosen_rows(rows: list[dict]) -> list[dict]:
    """The rows of each sweep's chosen point (the selection protocol's one definition)."""
    try:
        return [row for tuned in choose(rows) for row in tuned.chosen.rows]
    except ValueError as err:
        raise BenchError(str(err)) from None


@one_line_errors
def main(argv=None) -> int:
    args = parse_args(argv)
    new_rows = chosen_rows(load_runs([args.new])[0])
    reference_rows = chosen_rows(load_runs([args.reference])[0])
    matched, only_new, only_ref = changes(new_rows, reference_rows)
    if not matched:
        raise BenchError(f"{args.new} and {args.reference} have no configuration in common (config_id); nothing to compare")
    print_table(matched, args.tolerance)
    for what, labels in (("only in the new report", only_new), ("only in the reference", only_ref)):
        if labels:
            print(f"{what} (not compared): {', '.join(labels)}")
    regressed = [c for c in matched if c.accuracy_regressed or c.speed_regressed(args.tolerance)]
    if regressed:
        print(f"{len(regressed)} of {len(matched)} configurations regressed "
              f"(accuracy beyond noise, or throughput down more than {args.tolerance:.0%})")
        return 1
    print(f"no regression in {len(matched)} configurations (throughput tolerance {args.tolerance:.0%})")
    return 0

