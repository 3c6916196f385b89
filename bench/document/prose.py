"""The report's sentences: what the rows are, how the choice was made, what the numbers mean
and assume. Each function reads the Decision (bench/decision/decide.py) and returns text."""

from __future__ import annotations

from bench.decision.configs import Config
from bench.decision.cost import DEFAULT_PRICES
from bench.decision.decide import (
    ALPHA,
    Decision,
    pareto_front,
)
from bench.decision.screening import SIZE_PRIOR
from bench.decision.stats import CONFIDENCE
from bench.decision.text import accuracy, short_checkpoint, usd


def intro(paths, decision: Decision) -> str:
    configs = decision.configs
    first = configs[0].first
    runs = sum(len(p.rows) for t in decision.tuned for p in t.points)
    seeds = sorted({len(c.rows) for c in configs})
    validation = first.get("validation_examples")
    split = f"{int(validation):,} validation ({first.get('validation_split') or 'validation'}), " if validation else "no validation, "
    text = (
        f"From {', '.join(f'`{p}`' for p in paths)}: {runs} ok runs; {len(configs)} configurations compete "
        f"({'/'.join(map(str, seeds))} seed(s) each), {len(decision.not_ok)} run(s) did not finish; "
        f"{int(first.get('train_examples') or 0):,} training, {split}{int(first.get('test_examples') or 0):,} test examples "
        f"({first.get('test_split') or 'eval split'}); device: {', '.join(decision.devices)}."
    )
    if len(decision.devices) > 1:
        text += (" **MIXED DEVICES** (--mixed-devices): speed and cost were measured on different devices and each run is "
                 "priced at its own device's rate; differences in them may be the devices', not the strategies'.")
    text += weights(configs)
    unvalidated = [c.label for c in configs if c.validation is None]
    if unvalidated:
        text += (f" Without a validation split (rows from an older version, or a suite without one): "
                 f"{', '.join(unvalidated)}: untuned, epoch and settings as run.")
    return text


def weights(configs: list[Config]) -> str:
    """Which weights were compared: each checkpoint's revision (hub commit or weights hash),
    and a warning where one configuration's runs trained different weights (an unpinned hub
    name that moved between runs)."""
    revisions = {}
    for config in configs:
        for row in config.rows:
            revisions.setdefault(row["checkpoint"], set()).add(row.get("checkpoint_revision") or "")
    known = {spec: sorted(r for r in found if r) for spec, found in revisions.items()}
    if not any(known.values()):
        return ""  # rows from before revisions were recorded
    text = " Weights: " + "; ".join(f"{short_checkpoint(spec)} at {', '.join(found) or 'unrecorded'}"
                                    for spec, found in known.items()) + "."
    moved = [short_checkpoint(spec) for spec, found in known.items() if len(found) > 1]
    if moved:
        text += (f" **DIFFERENT WEIGHTS** under one name: {', '.join(moved)} resolved to more than one revision across "
                 "these runs; pin it as NAME@REVISION in the suite so every run trains the same weights.")
    return text


def protocol(decision: Decision) -> str:
    first = decision.configs[0].first
    if not first.get("validation_examples"):
        return ("These rows have no validation split: nothing was chosen on held-out data, and the test figures are those "
                "of the configurations as run.")
    return (
        f"Chosen on validation, reported on test. Each run kept its {'best validation' if any(r.get('select') == 'best' for c in decision.configs for r in c.rows) else 'last'} "
        f"epoch; each sweep's point is the one with the best mean validation accuracy over the seeds every point ran "
        f"(bench/decision/selection.py); the test split ({first.get('test_split')}, {int(first['test_examples']):,} examples) was scored "
        "once per run, after training, and only the chosen points are compared on it. Cost per run is the chosen point's "
        "(training + validation time); the tuning cost is what every point and seed of its sweep used, shown beside it."
    )


def tuning_note(swept: list[Config]) -> str:
    edges = [f"{c.label}'s chosen {key} is the {end} value swept" for c in swept for key, end in c.tuned.at_edge]
    edge = (f" **At the edge of the sweep:** {'; '.join(edges)}: the best may lie beyond it; widen the sweep."
            if edges else "")
    return ("Validation accuracy is averaged over the seeds every point ran (with sweep_seeds: first, the first seed); the "
            "chosen point alone then ran the other seeds. Test accuracy of the points not chosen is never shown or used: "
            "choosing among them on it would report the luckiest." + edge
            + (" With halving, every point trained to the first rung and only the best by validation accuracy there went "
               "on (docs/protocol.md, Halving); a stopped point's validation accuracy is at its last rung, and what it "
               "used is in the tuning cost." if any(c.tuned.stopped for c in swept) else ""))


def reading(configs, best, args) -> str:
    same = [c.label for c in configs if c.indistinguishable and c is not best]
    worse = [c.label for c in configs if c.p_holm is not None and c.p_holm < ALPHA]
    degenerate = [c.label for c in configs if c.degenerate]
    parts = [f"The best is **{best.label}** at {accuracy(best.accuracy.mean)} mean test accuracy."]
    parts.append(f"Statistically indistinguishable from it: {', '.join(same)}." if same else "No other configuration is statistically as accurate.")
    if worse:
        parts.append(f"Worse, beyond the noise of the test set: {', '.join(worse)}.")
    if degenerate:
        parts.append(f"Degenerate (one class predicted, or accuracy at the majority rate), never recommended: {', '.join(degenerate)}.")
    return " ".join(parts)


def tradeoffs(configs: list[Config], choice: Config) -> str:
    """What the cheaper configurations on the cost frontier give up, against the recommendation."""
    healthy = [c for c in configs if not c.degenerate]
    front = [healthy[i] for i in pareto_front([(c.cost_usd.mean, c.accuracy.mean) for c in healthy])]
    cheaper = [c for c in front if c.cost_usd.mean < choice.cost_usd.mean]
    if not cheaper or choice.cost_usd.mean == 0:
        return f"Nothing on the accuracy-vs-money frontier is cheaper than {choice.label}."
    trades = [
        f"{c.label} {100 * (c.accuracy.mean - choice.accuracy.mean):+.1f} points at {c.cost_usd.mean / choice.cost_usd.mean:.2f}x the cost"
        for c in sorted(cheaper, key=lambda c: -c.cost_usd.mean)
    ]
    return f"Cheaper, on the accuracy-vs-money frontier, against {choice.label}: {'; '.join(trades)}."


def legend(args) -> str:
    return (
        f"Means over seeds with {CONFIDENCE:.0%} bootstrap intervals of the mean (scipy.stats.bootstrap, BCa; with few seeds "
        "an interval is rough: read the per-seed values). Validation accuracy is what chose the epoch and the sweep point; "
        "test accuracy, scored once per run, is what is compared. Fit, from train loss / validation loss as in the seed notebook: below "
        f"{args.overfit_below} overfits, {args.overfit_below}-{args.fine_above} watch, above {args.fine_above} fine. "
        "Throughput is end to end (train examples x epochs run / train seconds, cache building included; a run that "
        "reused frozen features another run computed, marked *shared features*, excludes computing them, though its cost "
        "per run includes them); "
        "memory is the peak of the run (CUDA max allocated, or CPU peak RSS)."
    )


def significance_note(args) -> str:
    return (
        "Each chosen configuration against the best on the same test examples: McNemar's exact test when both ran one "
        "seed, otherwise a paired bootstrap over examples of the accuracy difference (each example's correctness "
        f"averaged over seeds, {10_000:,} resamples). Holm's correction over all comparisons with the best. "
        f"Indistinguishable means Holm-adjusted p >= {ALPHA}: the data cannot tell the two apart, not that they are equal. "
        "The t-test over seeds asks whether the difference exceeds seed-to-seed variation (seeds paired by number)."
    )


def cost_note(configs, args) -> str:
    sources = sorted({c.price.source for c in configs})
    defaults = ", ".join(f"{k} ${v:g}" for k, v in DEFAULT_PRICES.items())
    return (
        f"Cost per run = (training + validation) wall time x processes x price per device-hour of the run's own device "
        f"({'; '.join(sources)}), plus the frozen outputs it reused from an earlier run (charged once in the tuning cost). "
        "Tuning cost = what every run of the sweep used, every point and seed. "
        f"ASSUMPTIONS unless given with --price: on-demand list prices per device-hour ({defaults}); "
        "loading, tokenizing, the test pass and compilation are not counted. The projection to the whole train split "
        "scales the cost per run by the number of examples (same epochs)."
    )


def serving_note(configs: list, serve_at: str) -> str:
    low = [f"{c.label} ({c.serving.agreement:.3f})" for c in configs if c.serving and c.serving.agreement is not None
           and c.serving.agreement < 1]
    agreement = (f" Merged and unmerged predictions differ on some requests: {', '.join(low)} (mixed-precision rounding "
                 "is the usual cause; check before deploying merged)." if low else "")
    pooled = [c for c in configs if c.serving and c.serving.pooled_with]
    drift = max((c.serving.spread for c in pooled), default=0.0)
    pooling = (f" Configurations that serve the same computation (the same checkpoint, tokens per request, precision and device; "
               f"merged adapters and heads on a frozen backbone included) share one figure, the mean over all their runs: the "
               f"same computation measured after different runs varied by up to {drift:.0%} in throughput here (the machine's "
               "load drifting over the suite), so their own figures differ by drift, not by what they compute." if pooled else "")
    return (
        "Measured after each run on its device, in its compute dtype, eval mode, on validation texts tokenized per request "
        "(truncated at max_length, padded per batch): batch-1 latency of the model alone over at least the suite's "
        "serving.min_calls calls and serving.min_seconds, after a warm-up; throughput at each of serving.batch_sizes, the "
        "best shown. Tokenization is timed apart and not in the cost. Peft adapters that can be merged are served merged "
        "(merge_and_unload: what a deployment runs); the unmerged figures are beside them. USD per million predictions = "
        "device price per hour / (predictions per second x 3,600) x 10^6, at the price the Cost section states: the device "
        "time used, billed per use; an always-on replica costs its hourly price whatever the traffic. Totals use the "
        f"{'batch-1' if serve_at == 'batch1' else 'batched'} figure (--serve-at) and the training cost with its whole sweep."
        + pooling + agreement
    )


SCREEN_WORDS = {
    "probe": "a linear probe's validation accuracy (logistic regression on the standardised features, its "
             "regularisation chosen on validation; a Wilson interval over the validation examples)",
    "hscore-layers": "the shrunk H-score of the mean over every layer's mean-pooled tokens (Ledoit-Wolf; "
                     "TransformerRanker's default, Garbaciauskas et al., ACL Findings 2024), with a bootstrap interval",
    "logme": "LogME (You et al., ICML 2021), with a bootstrap interval over the examples",
    "hscore": "H-score (Bao et al., ICIP 2019), with a bootstrap interval over the examples",
}


def screening_note(decision: Decision) -> str:
    """What the screen did, and how well each screen (and the size prior) ranked the checkpoints here."""
    screen, agreement = decision.screening, decision.agreement
    first = screen[0]
    text = (f"Before fine-tuning, each checkpoint's frozen {first['pooling']}-pooled features of {first['examples']:,} "
            f"train examples were scored by {SCREEN_WORDS.get(first['score_name'], first['score_name'])}. The screen "
            "keeps the best by score, every checkpoint on the score-cost frontier (nothing cheaper scores higher), and "
            "every checkpoint whose interval reaches the kept ones': it drops only what is clearly apart. A frozen-feature "
            "score is not the fine-tuned accuracy. ")
    seconds = sum(r["seconds"] for r in screen)
    price = decision.configs[0].price
    text += (f"Scoring took {seconds:,.1f} s in all ({usd(seconds / 3600 * price.usd_per_hour)} at {price.source}), "
             f"against {usd(min(c.cost_usd.mean for c in decision.configs))} for the cheapest fine-tuning run here. ")
    if agreement.get("test") is None:
        return text + (f"Agreement with the fine-tuned results is not measured here: {agreement.get('checkpoints', 0)} "
                       "screened checkpoint(s) have fine-tuned runs, and a ranking needs at least 3.")
    key = "validation" if agreement.get("validation") is not None else "test"
    others = agreement.get("screens", {})
    ranking = "; ".join(f"{name}{' (the screen used)' if name == agreement['chosen'] else ''} {taus[key]:.2f}"
                        for name, taus in sorted(others.items(), key=lambda item: -item[1][key]))
    verdict = ("it ranked them well here" if agreement[key] >= 0.7 else
               "**on this task it did not rank them well (weighted tau below 0.7)**: read the screen as a weak hint")
    text += (f"Over the {agreement['checkpoints']} fine-tuned checkpoints (each at its best configuration), the weighted "
             f"Kendall tau (scipy.stats.weightedtau) of each score against the {key} accuracy: {ranking}. For the screen "
             f"used, {agreement[key]:.2f}: {verdict}.")
    size = others.get(SIZE_PRIOR)
    if size is not None and agreement[key] <= size[key]:
        text += (f" **It ranked no better than parameter count alone ({size[key]:.2f})**: here the screen's seconds "
                 "bought no information the sizes did not already give.")
    return text


def budget_note(decision: Decision) -> str:
    """How the bill was made, and whether the budgeted decision is the grid's."""
    bill = decision.bill
    parts = [("The decision's bill: what the screen's scoring, the runs that finished and the points halving stopped "
             "used (training + validation device-seconds, at the prices above).")]
    if bill.grid_measured:
        parts.append("The full grid's cost is measured: its rows are in this report too (the suite run again with "
                     "--no-screen --no-halving).")
        judged = decision.against_grid
        parts.append(judged.sentence() if judged.as_good else f"**{judged.sentence()}**")
    else:
        parts.append("The full grid's cost is an ESTIMATE: a stopped point at its measured seconds per epoch for every "
                     "epoch; a checkpoint the screen dropped at the kept checkpoints' cost of the same strategy, scaled by "
                     "parameter count (compute follows the parameters a token passes through, so this can err either way). "
                     "Run the suite again with --no-screen --no-halving into the same report to measure it and to see "
                     "whether the full grid decides the same.")
    return " ".join(parts)
