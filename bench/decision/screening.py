"""Screening checkpoints before fine-tuning them: which to keep, from a transferability score of
their frozen features (bench/decision/transferability.py) and what each costs to train.

The recommendation is the cheapest configuration indistinguishable from the best, so a screen
must never drop a checkpoint that could be it. A checkpoint is kept when any of these holds:
- it is among the `keep` best by score;
- it is on the frontier of (score, cost to train): no other checkpoint scores higher and costs
  no more (a cheaper, weaker model may still be as accurate once fine-tuned);
- its score's bootstrap interval reaches the lowest interval of the top `keep` (a frozen-feature
  score is not the fine-tuned accuracy: only a checkpoint clearly apart is dropped).
Every checkpoint gets the reason it was kept or dropped, for the report.
"""

from __future__ import annotations

import dataclasses

from scipy import stats

from bench.decision.text import short_checkpoint
from bench.results.screening import SCREEN_COLUMNS


@dataclasses.dataclass(frozen=True)
class Candidate:
    checkpoint: str
    score: float
    low: float  # the score's bootstrap interval over examples
    high: float
    cost: float  # to train: parameters, or measured FLOPs per example (lower is cheaper)


@dataclasses.dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    kept: bool
    reason: str


def screen(candidates: list[Candidate], keep: int) -> list[Verdict]:
    """One verdict per candidate, best score first (module docstring)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    ranked = sorted(candidates, key=lambda c: -c.score)
    top = ranked[:keep]
    floor = min(c.low for c in top)
    verdicts = []
    for rank, c in enumerate(ranked, start=1):
        better_and_cheaper = [o for o in candidates if o is not c and o.score > c.score and o.cost <= c.cost]
        if c in top:
            verdicts.append(Verdict(c, True, f"rank {rank} by score (the top {keep} are kept)"))
        elif not better_and_cheaper:
            verdicts.append(Verdict(c, True, "on the score-cost frontier: nothing cheaper scores higher"))
        elif c.high >= floor:
            verdicts.append(Verdict(c, True, f"its score's interval [{c.low:.4g}, {c.high:.4g}] reaches the kept ones' "
                                             f"(lowest {floor:.4g}): not clearly apart"))
        else:
            dominator = max(better_and_cheaper, key=lambda o: o.score)
            verdicts.append(Verdict(c, False, f"score {c.score:.4g} [{c.low:.4g}, {c.high:.4g}] clearly below the top {keep} "
                                              f"(lowest interval from {floor:.4g}), and {dominator.checkpoint} scores higher "
                                              "at no more cost"))
    return verdicts


SIZE_PRIOR = "size"  # the ranking by parameter count alone, which a screen must beat to be worth its seconds


def agreement(screen_rows: list[dict], configs: list) -> dict:
    """How well each screen ranked the checkpoints that were fine-tuned: scipy's weighted Kendall
    tau between a screen's scores and each checkpoint's best fine-tuned configuration (by mean
    validation accuracy; by test accuracy where there is no validation), its validation and test
    accuracies. {"checkpoints": n, "chosen": the suite's screen, "screens": {screen: {"validation":
    tau, "test": tau}}}, the size prior (parameter count) among the screens, and the chosen screen's
    taus at the top level; every tau None where fewer than 3 screened checkpoints have results."""
    best = {}
    for config in configs:
        key = config.validation.mean if config.validation else config.accuracy.mean
        checkpoint = config.first["checkpoint"]
        if checkpoint not in best or key > best[checkpoint][0]:
            best[checkpoint] = (key, config)
    scored = [(r, best[r["checkpoint"]][1]) for r in screen_rows if r["checkpoint"] in best]
    chosen = screen_rows[0]["score_name"] if screen_rows else None
    columns = SCREEN_COLUMNS | {SIZE_PRIOR: "parameters"}
    out = {"checkpoints": len(scored), "chosen": chosen, "screens": {}, "validation": None, "test": None}
    if len(scored) < 3:
        return out
    for name, column in columns.items():
        values = [r.get(column) for r, _ in scored]
        if any(v is None for v in values):
            continue  # a screening file from before this screen was computed
        taus = {"validation": None, "test": float(stats.weightedtau(values, [c.accuracy.mean for _, c in scored]).statistic)}
        if all(c.validation for _, c in scored):
            taus["validation"] = float(stats.weightedtau(values, [c.validation.mean for _, c in scored]).statistic)
        out["screens"][name] = taus
    chosen_taus = out["screens"].get(chosen) or {
        "validation": float(stats.weightedtau([r["score"] for r, _ in scored], [c.validation.mean for _, c in scored]).statistic)
        if all(c.validation for _, c in scored) else None,
        "test": float(stats.weightedtau([r["score"] for r, _ in scored], [c.accuracy.mean for _, c in scored]).statistic)}
    return {**out, **chosen_taus}


def screening_clause(screen: list[dict]) -> str:
    """The recommendation's word on the screen: how many checkpoints were fine-tuned, at what scoring cost."""
    dropped = [short_checkpoint(r["checkpoint"]) for r in screen if not r["kept"]]
    seconds = sum(r["seconds"] for r in screen)
    return (f"Screened before fine-tuning by {screen[0]['score_name']} of frozen features ({seconds:.0f} s): "
            f"{len(screen) - len(dropped)} of {len(screen)} checkpoints fine-tuned"
            + (f", {', '.join(dropped)} dropped (see Screening)." if dropped else "."))

