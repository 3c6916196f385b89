"""The decision with serving cost: what each chosen configuration costs to serve (from the
serving columns bench/deploy/serving.py measured after each run), its total cost at an expected traffic
(training, with its sweep, + serving for a horizon), and the traffic levels at which the
recommendation changes.

Serving cost per million predictions is the device time they take at the device's price
(bench/decision/cost.py): at the throughput batch (requests batched; what `--traffic` uses unless
`--serve-at batch1`) or one request at a time (latency-bound, the model alone). It is the cost
of the device time used, as billed per use; an always-on replica costs its hourly price whatever
the traffic.

Configurations whose served models compute the same thing (one checkpoint, the same tokens per
request, precision and device; a merged adapter is the plain model again, a head on a frozen
backbone adds next to nothing) cost the same to serve: their measurements, taken after each
run at different times of a shared machine, differ by timing drift alone, so they are pooled
(`pool_serving`) and a decision never turns on that drift.

The rule is the decision's (bench/decision/decide.py): among the configurations statistically as accurate
as the best, the cheapest, costs within 10% counting as one cost and broken by accuracy; only
here the cost is the total at the traffic. `switch_points` finds where that choice changes,
by bisection on the traffic, so the sentence and the choice at a given traffic always agree.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench.decision.cost import Price, serving_cost_per_million, total_cost
from bench.decision.text import accuracy, count, usd
from bench.errors import BenchError

SERVE_AT = ("throughput", "batch1")
LOWEST, HIGHEST = 1e2, 1e12  # predictions a month searched for switches: a hobby to a large service


@dataclasses.dataclass(frozen=True)
class ServingCost:
    """A configuration's serving figures (mean over its seeds) and what they cost."""
    form: str  # merged or as trained
    samples_per_s: float  # at its best throughput batch
    batch_size: int
    p50_ms: float
    p99_ms: float
    tokenize_ms: float
    input_tokens: int | None
    memory_mb: float | None
    stored_mb: float | None
    unmerged_samples_per_s: float | None
    unmerged_p50_ms: float | None
    agreement: float | None
    price: Price
    measured_samples_per_s: float | None = None  # its own runs' figure, before pooling
    pooled_with: tuple = ()  # labels of the configurations with the same served compute
    spread: float = 0.0  # max/min - 1 of samples/s over the pooled runs: the timing drift seen

    @property
    def per_million(self) -> float:
        """USD per million predictions at the throughput batch."""
        return serving_cost_per_million(self.samples_per_s, self.price)

    @property
    def per_million_batch1(self) -> float:
        """USD per million predictions one at a time (the model's p50 latency each)."""
        return serving_cost_per_million(1000 / self.p50_ms, self.price)

    @property
    def unmerged_per_million(self) -> float | None:
        return serving_cost_per_million(self.unmerged_samples_per_s, self.price) if self.unmerged_samples_per_s else None

    def usd_per_million(self, serve_at: str) -> float:
        return self.per_million_batch1 if serve_at == "batch1" else self.per_million


def serving_of(rows: list[dict], price: Price) -> ServingCost | None:
    """The serving figures of a configuration's rows; None when none of them measured serving."""
    measured = [r for r in rows if r.get("serving_samples_per_s") and r.get("serving_latency_p50_ms")]
    if not measured:
        return None

    def mean(column):
        values = [float(r[column]) for r in measured if r.get(column) is not None]
        return float(np.mean(values)) if values else None

    return ServingCost(
        form=measured[0].get("serving_form") or "as trained",
        samples_per_s=mean("serving_samples_per_s"),
        batch_size=int(measured[0]["serving_batch_size"]),
        p50_ms=mean("serving_latency_p50_ms"),
        p99_ms=mean("serving_latency_p99_ms"),
        tokenize_ms=mean("serving_tokenize_ms"),
        input_tokens=measured[0].get("serving_input_tokens"),
        memory_mb=max((float(r["serving_memory_mb"]) for r in measured if r.get("serving_memory_mb")), default=None),
        stored_mb=mean("serving_stored_mb"),
        unmerged_samples_per_s=mean("unmerged_samples_per_s"),
        unmerged_p50_ms=mean("unmerged_latency_p50_ms"),
        agreement=min((float(r["merged_agreement"]) for r in measured if r.get("merged_agreement") is not None), default=None),
        price=price,
    )


def serving_class(rows: list[dict]) -> tuple:
    """What a served model computes: checkpoint, tokens per request, precision, device, and for
    adapters served unmerged their own class (the adapter adds compute)."""
    row = rows[0]
    unmerged_adapter = row.get("strategy_kind") in ("lora", "peft") and row.get("serving_form") != "merged"
    return (row.get("checkpoint"), row.get("serving_input_tokens"), row.get("mixed_precision"), row.get("device"),
            row.get("strategy") if unmerged_adapter else "")


def pool_serving(configs: list) -> None:
    """Give configurations of one serving class the serving figures of all their runs together."""
    groups = {}
    for config in configs:
        if config.serving is not None:
            groups.setdefault(serving_class(config.rows), []).append(config)
    for group in groups.values():
        rows = [r for c in group for r in c.rows]
        pooled = serving_of(rows, group[0].serving.price)
        rates = [float(r["serving_samples_per_s"]) for r in rows if r.get("serving_samples_per_s")]
        for config in group:
            config.serving = dataclasses.replace(
                config.serving, samples_per_s=pooled.samples_per_s, p50_ms=pooled.p50_ms, p99_ms=pooled.p99_ms,
                measured_samples_per_s=config.serving.samples_per_s, spread=max(rates) / min(rates) - 1,
                pooled_with=tuple(c.label for c in group if c is not config))


def training_usd(config) -> float:
    """What getting the configuration cost: its whole sweep where the suite swept (every point
    and seed), else one run."""
    return config.tuning_cost_usd if config.tuned and config.tuned.swept else config.cost_usd.mean


def total_usd(config, traffic: float, months: float, serve_at: str) -> float:
    return total_cost(training_usd(config), config.serving.usd_per_million(serve_at), traffic, months)


def cheapest_as_accurate(candidates: list, cost_of, tie: float) -> tuple:
    """(choice, tied): the most accurate of the candidates whose cost is within `tie` of the cheapest."""
    cheapest = min(cost_of(c) for c in candidates)
    tied = [c for c in candidates if cost_of(c) <= cheapest * (1 + tie)]
    return max(tied, key=lambda c: c.accuracy.mean), tied


def served_candidates(configs: list) -> list:
    """The configurations a traffic decision can choose: as accurate as the best, not
    degenerate, with serving figures."""
    return [c for c in configs if c.indistinguishable and not c.degenerate and c.serving is not None]


def choice_at(candidates: list, traffic: float, months: float, serve_at: str, tie: float):
    return cheapest_as_accurate(candidates, lambda c: total_usd(c, traffic, months, serve_at), tie)[0]


def switch_points(candidates: list, months: float, serve_at: str, tie: float) -> list[tuple[float, object]]:
    """[(traffic from which it is chosen, configuration)], from the lowest traffic up: where the
    choice changes between LOWEST and HIGHEST predictions a month (log grid, then bisection to
    0.1%)."""
    grid = np.geomspace(LOWEST, HIGHEST, 241)
    choices = [choice_at(candidates, t, months, serve_at, tie) for t in grid]
    out = [(0.0, choices[0])]
    for low, high, before, after in zip(grid, grid[1:], choices, choices[1:]):
        if after is before:
            continue
        while high / low > 1.001:
            middle = float(np.sqrt(low * high))
            if choice_at(candidates, middle, months, serve_at, tie) is before:
                low = middle
            else:
                high = middle
        out.append((high, after))
    return out


def traffic_sentence(candidates: list, months: float, serve_at: str, tie: float) -> str:
    """"Below 2.1M predictions a month choose X; from 2.1M to 40M, Y; above 40M, Z"."""
    points = switch_points(candidates, months, serve_at, tie)
    if len(points) == 1:
        return f"at any traffic from {count(LOWEST)} to {count(HIGHEST)} predictions a month, **{points[0][1].label}**."
    parts = []
    for (start, config), (end, _) in zip(points, points[1:] + [(None, None)]):
        if start == 0:
            parts.append(f"below {count(end)} predictions a month choose **{config.label}**")
        elif end is None:
            parts.append(f"above {count(start)}, **{config.label}**")
        else:
            parts.append(f"from {count(start)} to {count(end)}, **{config.label}**")
    return "; ".join(parts) + "."


def recommend_at(configs: list, best, traffic: float, months: float, serve_at: str, tie: float) -> tuple[object, str]:
    """The recommendation at `traffic` predictions a month for `months`, and why."""
    candidates = served_candidates(configs)
    if not candidates:
        raise BenchError("--traffic needs serving figures, and no configuration as accurate as the best has them "
                         "(rows from an older version, or a run with --no-serving); rerun those runs with serving measured")
    choice, tied = cheapest_as_accurate(candidates, lambda c: total_usd(c, traffic, months, serve_at), tie)
    total = total_usd(choice, traffic, months, serve_at)
    ties = (f" Totals within {tie:.0%} of the cheapest count as equal, and among {', '.join(c.label for c in tied)} the "
            "most accurate was taken." if len(tied) > 1 else "")
    left_out = [c.label for c in configs if c.indistinguishable and not c.degenerate and c.serving is None]
    missing = f" Not considered, without serving figures: {', '.join(left_out)}." if left_out else ""
    why = (
        f"**{choice.label}** at an assumed traffic of {count(traffic)} predictions a month for {months:g} months "
        f"(--traffic, --months): the lowest total cost among the configurations statistically as accurate as the best "
        f"({best.label}, {accuracy(best.accuracy.mean)}): {usd(total)} = {usd(training_usd(choice))} to train (with its sweep) + "
        f"{usd(total - training_usd(choice))} to serve at {usd(choice.serving.usd_per_million(serve_at))} per million "
        f"predictions ({serving_basis(choice.serving, serve_at)}); test accuracy {accuracy(choice.accuracy.mean)}.{ties}{missing} "
        f"Across traffic levels: {traffic_sentence(candidates, months, serve_at, tie)}"
    )
    return choice, why


def serving_basis(serving: ServingCost, serve_at: str) -> str:
    if serve_at == "batch1":
        return f"one request at a time, p50 {serving.p50_ms:.1f} ms"
    return f"batch {serving.batch_size}, {serving.samples_per_s:,.0f} predictions/s"
