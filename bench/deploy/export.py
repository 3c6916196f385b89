"""A finished run in the formats the ecosystem loads (`bench/run.py --save`), and loading it back.

`<report stem>.models/<run_id>/` holds, by what the run trained:

- full and freeze runs (pretrained weights changed): the trained classifier as
  `save_pretrained` writes it, with its tokenizer and `id2label` / `label2id` from the suite's
  label names, so `pipeline("text-classification", model=folder)` answers "positive", not "1";
- peft runs: the adapter as peft writes it (adapter_config.json, adapter_model.safetensors,
  the classification head among its `modules_to_save`) with the tokenizer, for
  `AutoPeftModelForSequenceClassification.from_pretrained(folder)`; and, for methods whose
  adapters merge into the weights (LoRA and its kin, not prompt methods), `merged/`: the
  merged classifier in transformers' format, for `pipeline` (what a deployment serves);
- head and cnn runs: the backbone is the checkpoint unchanged, so what trained is the head
  alone (`head.safetensors`, with the tokenizer; `run.json` names the backbone and its
  revision); and `merged/`: backbone and head as one transformers model with its code
  (bench/inputs/heads.py, transformers' custom-code mechanism), for
  `pipeline(..., model=folder + "/merged", trust_remote_code=True)`.

Every folder holds `run.json`: the run, its checkpoint and the weights' revision, the strategy,
the label names, max_length, the folder's `format` and a `load` line of plain Python that
loads it. A folder is written under a temporary name and renamed when complete: a run killed
while saving leaves no half-written model under its run_id.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from peft import AutoPeftModelForSequenceClassification
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bench.deploy.serving import merged_adapter
from bench.errors import BenchError
from bench.inputs.checkpoints import Checkpoint, is_causal, split_derivation, split_revision
from bench.inputs.heads import (
    FrozenBackboneClassifier,
    FrozenHeadConfig,
    FrozenHeadForSequenceClassification,
)
from bench.inputs.strategies import STRATEGIES, build_model

TRANSFORMERS, PEFT, HEAD = "transformers", "peft", "frozen-backbone-head"


def export_format(model) -> str:
    if hasattr(model, "peft_config"):
        return PEFT
    if isinstance(model, FrozenBackboneClassifier):
        return HEAD
    return TRANSFORMERS


def save_run(folder: Path, cell, model, tokenizer, label_names: list, revision: str = "") -> None:
    """Write a finished run's model into `folder` in its kind's format (module docstring),
    under a temporary name first."""
    form = export_format(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the model from the rest of a team
    try:
        write_model(form, model, tokenizer, staging, cell, label_names)
        pad = model.config.pad_token_id if form == PEFT and is_causal(model.config) else None
        manifest = run_manifest(cell, form, label_names, revision, has_merged=(staging / "merged").is_dir(), pad_token_id=pad)
        (staging / "run.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        if folder.exists():  # --force reran the cell: the new run's model replaces the old one's
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_model(form: str, model, tokenizer, folder: Path, cell, label_names: list) -> None:
    tokenizer.save_pretrained(folder)
    if form == TRANSFORMERS:
        save_classifier(model, folder, label_names)
    elif form == PEFT:
        save_adapter(model, folder, label_names, cell)
    else:
        save_head(model, folder, cell, label_names)
    if (folder / "merged").is_dir():  # a folder pipeline() loads alone
        tokenizer.save_pretrained(folder / "merged")


def run_manifest(cell, form: str, label_names: list, revision: str, has_merged: bool, pad_token_id: int | None) -> dict:
    """run.json: what the run was, and how to load its folder. `pad_token_id`: a decoder's
    adapter, whose base checkpoint's config may have none (its classifier needs it)."""
    return {
        "run_id": cell.run_id(),
        "checkpoint": cell.checkpoint,
        "checkpoint_revision": revision,
        "strategy": cell.strategy.name,
        "kind": cell.strategy.kind,
        "params": cell.strategy.params,
        "labels": [str(name) for name in label_names],
        "max_length": cell.hparams.max_length,
        "format": form,
        "merged": has_merged,
        **({"pad_token_id": pad_token_id} if pad_token_id is not None else {}),
        "load": load_line(form, len(label_names), has_merged, pad_token_id),
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def label_config(label_names: list) -> dict:
    names = [str(name) for name in label_names]
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def save_classifier(model, folder: Path, label_names: list) -> None:
    """A transformers classifier with its label names (the weights in fp32, as they trained)."""
    for key, value in label_config(label_names).items():
        setattr(model.config, key, value)
    model.save_pretrained(folder)


def save_adapter(model, folder: Path, label_names: list, cell) -> None:
    """The peft adapter (and head) as peft saves it; `merged/` beside it when it merges."""
    _, revision = split_revision(split_derivation(cell.checkpoint)[0])
    config = model.peft_config[model.active_adapter]
    if revision:  # AutoPeftModel loads the base at the adapter config's revision
        config.revision = revision
    model.save_pretrained(folder)  # the adapter alone: the base's config (and labels) stay the checkpoint's
    deployable = merged_adapter(model)
    if deployable is not model:
        save_classifier(deployable, folder / "merged", label_names)
        del deployable


def save_head(model, folder: Path, cell, label_names: list) -> None:
    """The trained head of a frozen-backbone model (the backbone is the checkpoint as it is),
    and `merged/`: backbone and head as one transformers model that carries its code."""

    head = {name: p.detach().float().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    save_file(head, folder / "head.safetensors")
    defaults = {name: p.default for name, p in inspect.signature(STRATEGIES[cell.strategy.kind]).parameters.items()
                if name != "checkpoint"}
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in {**defaults, **cell.strategy.params}.items()}
    if "pooling" in options:
        options["pooling"] = model.pooling  # the default resolved for this checkpoint (last for a decoder)
    config = FrozenHeadConfig(kind=cell.strategy.kind, options=options, backbone=model.backbone.config.to_dict(),
                              **label_config(label_names))
    FrozenHeadConfig.register_for_auto_class()
    FrozenHeadForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    with torch.device("meta"):  # no random backbone to build only to overwrite: the trained tensors are assigned
        whole = FrozenHeadForSequenceClassification(config)
    whole.model.load_state_dict(model.state_dict(), assign=True)
    whole.save_pretrained(folder / "merged")


def load_line(form: str, num_labels: int, has_merged: bool, pad_token_id: int | None = None) -> str:
    """One line of plain Python that loads the folder (FOLDER stands for its path)."""
    if form == TRANSFORMERS:
        return 'transformers.pipeline("text-classification", model=FOLDER)'
    if form == PEFT:
        labels = "" if num_labels == 2 else f", num_labels={num_labels}"
        pad = "" if pad_token_id is None else f", pad_token_id={pad_token_id}"
        line = f"peft.AutoPeftModelForSequenceClassification.from_pretrained(FOLDER{labels}{pad})"
        return line + ('; or the merged model: transformers.pipeline("text-classification", model=FOLDER + "/merged")'
                       if has_merged else "")
    return ('transformers.pipeline("text-classification", model=FOLDER + "/merged", trust_remote_code=True)  '
            "# or bench.deploy.export.load_saved(FOLDER): the checkpoint's backbone + this folder's head.safetensors")


def load_saved(folder: Path):
    """(model in eval mode, tokenizer, run.json) of an exported run, loaded the way `load`
    in its run.json says: transformers for full and freeze runs, peft for adapters (the merged
    model where there is one: the same predictions, served faster), the strategy's own module
    for a frozen backbone's head. Folders saved before exports (trainable.safetensors) load too."""

    folder = Path(folder)
    run = json.loads((folder / "run.json").read_text())
    form = run.get("format")
    if form == TRANSFORMERS or (form == PEFT and run.get("merged")):
        path = folder / "merged" if form == PEFT else folder
        return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(folder), run
    if form == PEFT:
        extra = {} if len(run["labels"]) == 2 else {"num_labels": len(run["labels"])}
        if run.get("pad_token_id") is not None:
            extra["pad_token_id"] = run["pad_token_id"]
        model = AutoPeftModelForSequenceClassification.from_pretrained(folder, **extra)
        return model.eval(), AutoTokenizer.from_pretrained(folder), run
    return _rebuilt(folder, run, "head.safetensors" if form == HEAD else "trainable.safetensors")


def _rebuilt(folder: Path, run: dict, weights: str):
    """The strategy's model rebuilt from the checkpoint, with the saved trained tensors."""
    checkpoint = Checkpoint(run["checkpoint"], len(run["labels"]))
    torch.manual_seed(0)  # new layers get initial values that the saved ones then replace; fixed, so a rebuild repeats
    model = build_model(run["kind"], checkpoint, run["params"]).model
    state = load_file(folder / weights)
    unknown = sorted(set(state) - {name for name, _ in model.named_parameters()})
    if unknown:
        raise BenchError(f"saved run {folder} does not fit the model its strategy builds (e.g. {unknown[0]}); "
                         "was it saved by another version?")
    model.load_state_dict(state, strict=False)
    return model.eval(), checkpoint.tokenizer(), run
