"""Classify new text with a run saved by `bench/run.py --save` (the second notebook's `predict`).

    python -m bench.predict 64b1e61b57b5 "a wonderful film" "dull and far too long"
    python -m bench.predict 64b1e61b57b5 --models reports/offline.models "..."

A saved run is a folder `<report stem>.models/<run_id>/` beside the report: `run.json` (the
checkpoint, the strategy and its options, the label names, max_length) and
`trainable.safetensors` (the parameters that trained, under their names in the strategy's
model: the adapter and head for peft runs, the head for head and cnn runs, the trained layers
for freeze runs, everything for full runs). The model is rebuilt from the checkpoint by the
same strategy and the trained parameters are loaded into it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import BenchError, OneLineParser

ROOT = Path(__file__).resolve().parent.parent


def save_run(folder: Path, cell, trainable: dict, labels: list) -> None:
    """Write a finished run's trained parameters and what rebuilds its model into `folder`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: p.detach().float().cpu().contiguous() for name, p in trainable.items()}, folder / "trainable.safetensors")
    (folder / "run.json").write_text(json.dumps({
        "run_id": cell.run_id(),
        "checkpoint": cell.checkpoint,
        "strategy": cell.strategy.name,
        "kind": cell.strategy.kind,
        "params": cell.strategy.params,
        "labels": labels,
        "max_length": cell.hparams.max_length,
    }, indent=2, default=str) + "\n")


def find_run(run_id: str, models: Path | None) -> Path:
    """The saved run's folder: under --models, else under any reports/*.models/."""
    roots = [models] if models else sorted((ROOT / "reports").glob("*.models"))
    for root in roots:
        if (root / run_id / "run.json").is_file():
            return root / run_id
    where = str(models) if models else f"{ROOT / 'reports'}/*.models"
    raise BenchError(f"no saved run '{run_id}' in {where}; run the suite with --save (or pass --models DIR)")


def load_run(folder: Path):
    """(model in eval mode, tokenizer, run.json) of a saved run."""
    import torch
    from safetensors.torch import load_file

    from bench.checkpoints import Checkpoint
    from bench.strategies import build_model

    run = json.loads((folder / "run.json").read_text())
    checkpoint = Checkpoint(run["checkpoint"], len(run["labels"]))
    torch.manual_seed(0)  # new layers get initial values that the saved ones then replace; fixed, so a rebuild repeats
    model = build_model(run["kind"], checkpoint, run["params"]).model
    state = load_file(folder / "trainable.safetensors")
    missing = sorted(set(state) - {name for name, _ in model.named_parameters()})
    if missing:
        raise BenchError(f"saved run {folder} does not fit the model its strategy builds (e.g. {missing[0]}); was it saved by another version?")
    model.load_state_dict(state, strict=False)
    return model.eval(), checkpoint.tokenizer(), run


def predict(folder: Path, texts: list[str]) -> list[tuple[str, float]]:
    """(label, probability) for each text."""
    import torch

    model, tokenizer, run = load_run(folder)
    batch = tokenizer(texts, truncation=True, max_length=run["max_length"], padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.softmax(model(**batch).logits.float(), dim=-1)
    best = probabilities.argmax(-1)
    return [(run["labels"][i], float(probabilities[row, i])) for row, i in enumerate(best.tolist())]


def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", help="the run_id of a run saved with bench/run.py --save")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    parser.add_argument("--models", type=Path, help="the folder holding saved runs (default: any reports/*.models)")
    args = parser.parse_args(argv)
    try:
        folder = find_run(args.run_id, args.models)
        results = predict(folder, args.texts)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for text, (label, probability) in zip(args.texts, results):
        print(f"{label}\t{probability:.3f}\t{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
