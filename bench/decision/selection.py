"""The selection protocol: which point, which epoch, on which split, and what the choice cost.

One definition of "the chosen configuration", used by the runner (`sweep_seeds: first`),
the decision report, `compare` and the README table:

- Epoch: each run keeps its last epoch, or with `select: best` the epoch with the best
  validation accuracy (bench/train/loop.py records it as `selected_epoch`).
- Point: the runs of one sweep share a `tuning_id`; each point is a `config_id` (its seeds).
  The chosen point has the highest mean validation accuracy over the seeds that every point
  ran (with `sweep_seeds: first`, the first seed); a tie goes to the earlier point.
- Test: the test split (`test_accuracy`) is scored once per run and never chooses anything;
  only chosen points compete on it (significance, frontier, recommendation).
- Halving (a suite's `halving:`): the same rule applied early, at rungs (epoch counts), and
  only where the validation set can tell points apart (`rung_decision`). Every point trains to
  the first rung. While no point beats the majority class there, the rung moves one epoch on.
  Then the best max(1, n // eta) of the n points that reached it, by mean validation accuracy
  (ties to the earlier point), continue, and so does every point not clearly worse than the
  weakest of them (a one-sided paired test on the same validation examples, Holm-adjusted, at the
  suite's `level`); and so on to the last epoch. Only within one sweep. The points clearly worse
  are `stopped`: never scored on test, never chosen.
- Cost: a run's standalone cost is its training and validation time (plus the frozen outputs
  it reused from an earlier run); a chosen configuration's tuning cost is what every run of
  its sweep used (every point and seed, stopped points up to their last rung; shared frozen
  outputs counted once).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from bench.decision.stats import above_rate_p_value, holm, paired_example_test


@dataclasses.dataclass
class Point:
    config_id: str
    values: dict  # the swept values ({} without a sweep)
    rows: list  # its rows, one per seed

    def __repr__(self) -> str:
        return f"Point({self.values or 'unswept'}: {len(self.rows)} seed(s))"

    def validation_on(self, seeds: set) -> float | None:
        values = [r.get("validation_accuracy") for r in self.rows if int(r["seed"]) in seeds]
        values = [float(v) for v in values if v not in (None, "")]
        return float(np.mean(values)) if values else None


@dataclasses.dataclass
class Tuned:
    """The points of one sweep (or one untuned configuration) and the one chosen."""
    tuning_id: str
    points: list[Point]
    chosen: Point
    seeds_compared: list[int]  # the seeds the choice was made on
    on_validation: bool  # False: old rows without validation figures; an only point is taken as it is
    stopped: list = dataclasses.field(default_factory=list)  # rows of points halving stopped at a rung

    def __repr__(self) -> str:
        return f"Tuned({self.tuning_id}: {len(self.points)} point(s), chosen {self.chosen!r})"

    @property
    def swept(self) -> bool:
        return len(self.points) + len({r["config_id"] for r in self.stopped}) > 1

    @property
    def stopped_points(self) -> list[Point]:
        """The points halving stopped, each with its stopped rows (validation at its last rung)."""
        by_config: dict[str, list] = {}
        for row in self.stopped:
            by_config.setdefault(row["config_id"], []).append(row)
        return [Point(cid, _values(rows[0]), rows) for cid, rows in by_config.items()]

    @property
    def at_edge(self) -> list[tuple[str, str]]:
        """(key, 'smallest' or 'largest') for each numeric swept key whose chosen value is an end
        of its swept range: the best may lie beyond it."""
        edges = []
        for key, value in self.chosen.values.items():
            values = {p.values.get(key) for p in self.points + self.stopped_points}
            numeric = len(values) > 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric and value in (min(values), max(values)):
                edges.append((key, "smallest" if value == min(values) else "largest"))
        return edges

    @property
    def tuning_rows(self) -> list:
        """Every run the choice paid for: each point's rows and the stopped points' rows."""
        return [r for p in self.points for r in p.rows] + list(self.stopped)

    @property
    def tuning_device_seconds(self) -> float:
        return sum(charged_device_seconds(r) for r in self.tuning_rows)


def _number(row: dict, column: str) -> float:
    """A typed row's figure, 0 where it is empty (a run without a validation split has no validation time)."""
    return row.get(column) or 0.0


def charged_device_seconds(row: dict) -> float:
    """Device-seconds this run used to produce a kept model: training (with the frozen outputs
    it computed) and validation, times processes. The one test pass is measurement."""
    return (_number(row, "train_seconds") + _number(row, "validation_seconds")) * int(row.get("num_processes") or 1)


def standalone_device_seconds(row: dict) -> float:
    """What the run would cost alone: its charged seconds plus the frozen outputs it reused
    from an earlier run of the suite."""
    return charged_device_seconds(row) + _number(row, "reused_cache_seconds") * int(row.get("num_processes") or 1)


def tuning_key(row: dict) -> str:
    return row.get("tuning_id") or row["config_id"]  # rows from before sweeps: each configuration alone


def choose(rows: list[dict], stopped: list[dict] = ()) -> list[Tuned]:
    """Group ok rows by sweep and choose each sweep's point on validation (module docstring);
    `stopped`: rows of points halving stopped, charged to their sweep."""
    sweeps: dict[str, dict[str, list]] = {}
    for row in rows:
        sweeps.setdefault(tuning_key(row), {}).setdefault(row["config_id"], []).append(row)
    tuned = []
    for tuning_id, by_config in sweeps.items():
        points = [Point(cid, _values(rs[0]), sorted(rs, key=lambda r: int(r["seed"]))) for cid, rs in by_config.items()]
        tuned.append(choose_point(tuning_id, points))
        tuned[-1].stopped = [r for r in stopped if tuning_key(r) == tuning_id]
    return tuned


@dataclasses.dataclass(frozen=True)
class RungPoint:
    """One point of a halved sweep at a rung: its mean validation accuracy there over its runs
    (None: out, a run failed before the rung) and which validation examples each run got right
    (runs x examples; None: rows from before outcomes were recorded)."""
    config_id: str
    accuracy: float | None
    correct: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class RungDecision:
    """What a rung decided: `decided` False when no point beats the majority class yet (the
    decision moves one epoch on); the points that go on (suite order); the plain cut (the best
    max(1, n // eta)); and for every point outside the cut, why it stopped or went on."""
    decided: bool
    continuing: list
    cut: list
    reasons: dict


def rung_decision(points: list[RungPoint], eta: int, level: float, majority: float | None) -> RungDecision:
    """Successive halving at one rung (module docstring), on the noise of the validation set:
    - while no point's accuracy is above the majority class's rate (one-sided exact binomial
      test at `level`), nothing is decided: every point goes on one more epoch;
    - else the cut is the best max(1, n // eta) of the n points that entered (ties to the earlier
      point), and a point below the cut stops only when it is clearly worse than the weakest
      point in the cut: a one-sided paired test on the same validation examples (McNemar's exact
      for one run each), Holm-adjusted over the points tested, below `level`. Points tied at the
      cut go on. A point without per-example outcomes cannot be shown worse: it goes on."""
    scored = [(i, p) for i, p in enumerate(points) if p.accuracy is not None]
    if not scored:
        return RungDecision(True, [], [], {})
    outcomes = majority is not None and all(p.correct is not None for _, p in scored)
    if outcomes and not any(above_rate_p_value(p.correct, majority) < level for _, p in scored):
        best = max(p.accuracy for _, p in scored)
        why = (f"no point is above the majority class's rate {majority:.4f} yet (best {best:.4f}; one-sided binomial "
               f"p >= {level:g}): the decision moves one epoch on")
        return RungDecision(False, [p.config_id for _, p in scored], [], {p.config_id: why for _, p in scored})
    ranked = sorted(scored, key=lambda entry: (-entry[1].accuracy, entry[0]))
    cut = [p for _, p in ranked[: max(1, len(points) // eta)]]
    weakest, below = cut[-1], [p for _, p in ranked[len(cut):]]
    tests = {p.config_id: paired_example_test(p.correct, weakest.correct, alternative="less") for p in below
             if p.correct is not None and weakest.correct is not None}
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()]))) if tests else {}
    reasons, stopped = {}, set()
    for p in below:
        head = f"validation {p.accuracy:.4f} against {weakest.accuracy:.4f}, the weakest point kept"
        if p.config_id not in tests:
            reasons[p.config_id] = f"{head}; no per-example outcomes to test it on, so it goes on"
            continue
        test, q = tests[p.config_id], adjusted[p.config_id]
        clearly = q < level
        stopped |= {p.config_id} if clearly else set()
        reasons[p.config_id] = (f"{head}: {'clearly worse' if clearly else 'not clearly worse, it goes on'} "
                                f"({test.test} p {test.p_value:.3g}, Holm {q:.3g} {'<' if clearly else '>='} {level:g})")
    continuing = [p.config_id for _, p in scored if p.config_id not in stopped]
    return RungDecision(True, continuing, [p.config_id for p in cut], reasons)


def choose_point(tuning_id: str, points: list[Point]) -> Tuned:
    """The point with the best mean validation accuracy over the seeds all points share."""
    shared = set.intersection(*({int(r["seed"]) for r in p.rows} for p in points))
    seeds = shared or {int(r["seed"]) for p in points for r in p.rows}
    scores = [p.validation_on(seeds) for p in points]
    if any(s is None for s in scores):
        if len(points) > 1:
            raise ValueError(f"sweep {tuning_id}: a point has no validation accuracy, so no point can be chosen")
        return Tuned(tuning_id, points, points[0], sorted(seeds), on_validation=False)
    best = max(range(len(points)), key=lambda i: (scores[i], -i))
    return Tuned(tuning_id, points, points[best], sorted(seeds), on_validation=True)


def _values(row: dict) -> dict:
    value = row.get("sweep_point")
    if isinstance(value, dict):
        return value

    return json.loads(value) if value else {}
