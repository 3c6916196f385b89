"""Classify new text with a run saved by `bench/run.py --save` (the second notebook's `predict`).

    python -m bench.predict 64b1e61b57b5 "a wonderful film" "dull and far too long"
    python -m bench.predict 64b1e61b57b5 --models reports/offline.models "..."

A saved run is a folder `<report stem>.models/<run_id>/` beside the report, in the format
its kind allows (bench/deploy/export.py): a transformers model, a peft adapter (with the merged
model beside it), or a frozen backbone's head. It is loaded the way its run.json says.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.cli import OneLineParser, one_line_errors
from bench.deploy.export import load_saved
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]


def find_run(run_id: str, models: Path | None) -> Path:
    """The saved run's folder: under --models, else under any runs/*.models/ or reports/*.models/."""
    roots = [models] if models else sorted((ROOT / "runs").glob("*.models")) + sorted((ROOT / "reports").glob("*.models"))
    for root in roots:
        if (root / run_id / "run.json").is_file():
            return root / run_id
    where = str(models) if models else f"{ROOT / 'runs'}/*.models or {ROOT / 'reports'}/*.models"
    raise BenchError(f"no saved run '{run_id}' in {where}; run the suite with --save (or pass --models DIR)")


def predict(folder: Path, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability) for each text."""
    model, tokenizer, run = load_saved(folder)
    batch = tokenizer(texts, truncation=True, max_length=run["max_length"], padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
    best = probabilities.argmax(-1)
    return [(run["labels"][i], float(probabilities[row, i])) for row, i in enumerate(best.tolist())]


@one_line_errors
def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the run_id of a run saved with bench/run.py --save")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    parser.add_argument("--models", type=Path, help="the folder holding saved runs (default: any runs/*.models or reports/*.models)")
    args = parser.parse_args(argv)
    results = predict(find_run(args.run_id, args.models), args.texts)
    for text, (label, probability) in zip(args.texts, results):
        print(f"{label}\t{probability:.3f}\t{text}")
    return 0

