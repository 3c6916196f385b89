"""Fine-tuning strategies: each turns a checkpoint into the model to train.

One registry, keyed by the suite's `kind`. A strategy is a function
`(checkpoint, **options) -> Prepared` whose keyword arguments are exactly the options a
suite may give it (checked before anything runs). `Prepared` is the plan for the loop: the
model to train (it takes `input_ids, attention_mask, [token_type_ids], labels` and returns
`.loss` and `.logits`; its parameters with `requires_grad=True` are the ones that train),
and what of it is frozen and may be computed once (bench/train/features.py).

Add a strategy by writing one function here with `@strategy("kind")`.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable
from typing import Annotated

from pydantic import Field
from torch import nn

from bench.errors import BenchError, first_line
from bench.suite.schema import (
    NonNegative,
    Positive,
    Text,
    strategy_options_model,
    validated,
)

# peft (3.9 s to import on this 2-core machine) and bench.inputs.heads (transformers' model
# classes, 3.6 s) are imported inside the strategies that use them: loading a suite reads this
# module's signatures (1.2 s with torch), and a typo in a suite is answered before they load.
STRATEGIES = {}
Probability = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]  # a dropout rate

# peft calls a transformers method that transformers 5 deprecated; not ours to fix, and it
# would repeat for every LoRA run.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@dataclasses.dataclass
class Prepared:
    """What a strategy hands the training loop.

    `frozen_prefix`: (name of the encoder's layer list, index of the lowest trainable layer):
    the embeddings and the layers below are frozen, and their outputs may be cached.
    `features`: a frozen feature extractor, `(input_ids, attention_mask, [token_type_ids]) ->
    one vector per example`; the model then also accepts `features=` instead of tokens.
    """

    model: nn.Module
    frozen_prefix: tuple[str, int] | None = None
    features: Callable | None = None

    @property
    def cache_key(self) -> tuple | None:
        """What the frozen part computes, for sharing its cached outputs between runs: the
        pooled vector or token states of the backbone, or the frozen bottom up to a layer."""
        if self.frozen_prefix is not None:
            return ("prefix", *self.frozen_prefix)
        if self.features is not None:
            return (type(self.model).__name__, getattr(self.model, "pooling", "tokens"))
        return None


def strategy(kind: str):
    def register(fn):
        STRATEGIES[kind] = fn
        return fn

    return register


def validate_strategy_params(kind: str, params: dict, where: str) -> dict:
    """Unknown kinds and unknown, mistyped or out-of-range options fail here, before any model
    is loaded. An option's type and range are its annotation in the strategy's signature
    (bench/suite/schema.py builds the checking model from it). Returns the options as given."""

    if not isinstance(kind, str) or kind not in STRATEGIES:
        raise BenchError(f"{where}: unknown strategy kind {kind!r}; known kinds: {', '.join(sorted(STRATEGIES))}")
    if kind not in _OPTION_MODELS:
        _OPTION_MODELS[kind] = strategy_options_model(kind, STRATEGIES[kind])
    try:
        validated(_OPTION_MODELS[kind], params, where)
    except BenchError as err:
        message = str(err).replace("unknown key", f"kind '{kind}' has no option", 1).replace("known keys:", "its options:")
        raise BenchError(message[:-1] + " none" if message.endswith("its options: ") else message) from None
    return params


_OPTION_MODELS: dict = {}


def build_model(kind: str, checkpoint, params: dict) -> Prepared:
    return STRATEGIES[kind](checkpoint, **params)


def parameter_counts(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total_params": total, "trainable_params": trainable, "trainable_pct": round(100 * trainable / total, 4)}


def changes_pretrained(model) -> bool:
    """Whether training changes a pretrained weight (full runs, freeze runs that train more than
    the head): serving it then needs the whole model stored, not only what trained. Adapters,
    prompts and heads on a frozen backbone leave the checkpoint's weights as they are."""
    from bench.inputs.heads import FrozenBackboneClassifier  # 3.6 s: see STRATEGIES

    if hasattr(model, "peft_config") or isinstance(model, FrozenBackboneClassifier):
        return False
    head = set(head_parameter_names(model))
    return any(p.requires_grad and name not in head for name, p in model.named_parameters())


# ----------------------------------------------------------------------------- strategies


@strategy("full")
def full(checkpoint) -> Prepared:
    """Every parameter trains (the seed notebook's default)."""
    return Prepared(checkpoint.classifier())


@strategy("freeze")
def freeze(
    checkpoint, patterns: list[Text] = (), top: NonNegative = 0, bottom: NonNegative = 0, layers: list[int] = (),
    biases: bool = False, cache_frozen: bool = False,
) -> Prepared:
    """Only the selected parameters train; everything else is frozen.

    `patterns`: a parameter trains if its name contains one of these substrings (the seed
    notebook's rule, kept exactly: "layer.1" also matches "layer.10").
    `top` / `bottom` / `layers`: encoder layers by position, resolved against this model's
    own layer list, so one suite fits a 6-layer and a 12-layer model.
    `biases`: every bias trains too; alone, this is BitFit (Ben Zaken et al., 2022).
    The classification head always trains.
    `cache_frozen`: compute the frozen bottom (embeddings + layers below the lowest trainable
    one) once per example instead of every epoch (bench/train/features.py); no dropout in that part.
    """
    model = checkpoint.classifier()
    names = [name for name, _ in model.named_parameters()]
    selected = set(head_parameter_names(model))
    for pattern in patterns:
        hits = [n for n in names if str(pattern) in n]
        if not hits:
            raise BenchError(
                f"freeze pattern '{pattern}' matches no parameter of {checkpoint.spec}; "
                f"its parameter names look like: {summarize_names(names)}"
            )
        selected.update(hits)
    if biases:
        selected.update(n for n in names if n.endswith(".bias"))
    if top or bottom or layers:
        prefix, count = encoder_layers(model, checkpoint.spec)
        chosen = set(range(count - top, count)) | set(range(bottom))
        for index in layers:
            if not isinstance(index, int) or not -count <= index < count:
                raise BenchError(f"freeze layer index {index!r} is out of range for {checkpoint.spec}, which has {count} layers")
            chosen.add(index % count)
        if top > count or bottom > count:
            raise BenchError(f"freeze top/bottom ({top}/{bottom}) exceeds the {count} layers of {checkpoint.spec}")
        selected.update(n for n in names for i in chosen if n.startswith(f"{prefix}.{i}."))
    for name, param in model.named_parameters():
        param.requires_grad = name in selected
    return Prepared(model, frozen_prefix=frozen_bottom(model, checkpoint) if cache_frozen else None)


# Architectures whose base model output after the frozen layers is not what the next layer
# takes, so a cached frozen bottom would change the computation (tests/test_families.py).
CACHE_UNSAFE = {
    "modernbert": "ModernBERT normalises the last layer's output (final_norm), so the frozen layers' output is not "
    "the next layer's input",
}


def frozen_bottom(model: nn.Module, checkpoint) -> tuple[str, int]:
    """(name of the layer list, index of the lowest trainable layer): everything below it,
    embeddings included, must be frozen for its outputs to be cached."""
    spec = checkpoint.spec
    if model.config.model_type in CACHE_UNSAFE:
        raise BenchError(f"cache_frozen cannot be used with {spec}: {CACHE_UNSAFE[model.config.model_type]}; drop cache_frozen")
    if checkpoint.causal:
        raise BenchError(f"cache_frozen cannot be used with {spec}: a decoder normalises its last layer's output and "
                         "builds its positions and causal mask inside its base model, so the frozen layers' output is "
                         "not what the next layer takes; drop cache_frozen")
    prefix, count = encoder_layers(model, spec)
    layer_of = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    base = f"{model.base_model_prefix}."
    first = count
    for name, param in model.named_parameters():
        if not param.requires_grad or not name.startswith(base):
            continue
        match = layer_of.match(name)
        if match:
            first = min(first, int(match.group(1)))
        elif ".embeddings." in name:
            raise BenchError(f"cache_frozen needs frozen embeddings, but {name} of {spec} trains")
    if first == 0:
        raise BenchError(f"cache_frozen: the lowest encoder layer of {spec} trains, so there is no frozen bottom to cache")
    return prefix, first


@strategy("head")
def head(checkpoint, hidden: list[Positive] = (64,), pooling: Text | None = None, dropout: Probability = 0.0) -> Prepared:
    """Frozen backbone, a new MLP head on its pooled output (the second notebook:
    pooler output -> Linear(H, 64) -> ReLU -> Linear(64, num_labels)).

    `hidden`: sizes of the head's hidden layers ([] is a linear probe).
    `pooling`: "pooler" (the backbone's own pooler), "cls" (first token), "mean" or "max"
    (over the real tokens), "last" (the last real token). Default: "last" for a decoder; for
    an encoder its pooler, or "mean" where it has none (ModernBERT, DeBERTa-v3, DistilBERT).
    """
    from bench.inputs.heads import PooledHeadClassifier  # 3.6 s: see STRATEGIES

    if pooling is not None and pooling not in PooledHeadClassifier.POOLINGS:
        raise BenchError(f"head pooling must be one of {', '.join(PooledHeadClassifier.POOLINGS)}, got '{pooling}'")
    if not all(isinstance(h, int) and h > 0 for h in hidden):
        raise BenchError(f"head hidden sizes must be positive integers, got {list(hidden)}")
    if pooling is not None:
        check_pooling(checkpoint, pooling)
    backbone = checkpoint.backbone()
    pooling = pooling or default_pooling(checkpoint, backbone)
    if pooling == "pooler" and getattr(backbone, "pooler", None) is None:
        raise BenchError(f"{checkpoint.spec} has no pooler layer; use pooling: cls or pooling: mean")
    model = PooledHeadClassifier(backbone, checkpoint.num_labels, list(hidden), pooling, dropout)
    return Prepared(model, features=model.pool)


def default_pooling(checkpoint, backbone) -> str:
    """A decoder's last real token has seen the whole text; an encoder's pooler was trained to
    summarise it, and the mean of its tokens does where it has no pooler."""
    if checkpoint.causal:
        return "last"
    return "pooler" if getattr(backbone, "pooler", None) is not None else "mean"


def check_pooling(checkpoint, pooling: str) -> None:
    """A decoder has no pooler, and its first token has seen nothing of the text after it."""
    if checkpoint.causal and pooling in ("cls", "pooler"):
        what = "a decoder's first token has seen nothing of the text after it" if pooling == "cls" else "a decoder has no pooler"
        raise BenchError(f"pooling '{pooling}' cannot summarise a text with {checkpoint.spec}: {what}; "
                         "use pooling: last (the last real token, which has seen all of it) or mean")


@strategy("cnn")
def cnn(checkpoint, kernel_sizes: list[Positive] = (3, 4, 5), channels: Positive = 64, hidden: list[Positive] = (),
        dropout: Probability = 0.1) -> Prepared:
    """Frozen backbone, a trainable text CNN over its last hidden states (the seed notebook's
    CNN head, section 1.4). The token states are computed once per example and the head
    trains on them (bench/train/features.py).

    `kernel_sizes`: one convolution per size, each `channels` filters wide; `hidden`: MLP
    sizes after the max pooling ([] = one linear layer); `dropout` before the MLP.
    """
    from bench.inputs.heads import TokenCNNClassifier  # 3.6 s: see STRATEGIES
    if not kernel_sizes or not all(k > 0 for k in kernel_sizes) or channels <= 0 or not all(h > 0 for h in hidden):
        raise BenchError(f"cnn needs positive kernel_sizes, channels and hidden sizes, got {list(kernel_sizes)}, {channels}, {list(hidden)}")

    model = TokenCNNClassifier(checkpoint.backbone(), checkpoint.num_labels, list(kernel_sizes), channels, list(hidden), dropout)
    return Prepared(model, features=model.tokens)


@strategy("lora")
def lora(checkpoint, r: Positive = 8, alpha: Positive = 16, dropout: Probability = 0.1, target_modules: list[Text] | None = None) -> Prepared:
    """peft LoRA adapters; the classification head trains in full. The shorthand for
    `kind: peft, method: lora` with these options.

    `target_modules`: default peft's own per-architecture choice (query/value for BERT and
    RoBERTa families), or every linear layer of the encoder where peft has none.
    """
    options = {"r": r, "lora_alpha": alpha, "lora_dropout": dropout}
    if target_modules is not None:
        options["target_modules"] = target_modules
    return peft_method(checkpoint, "lora", options)


# Methods whose training needs more than our loop gives: AdaLoRA reallocates ranks from the
# loop (`update_and_allocate` every step), which a plain optimizer step does not call.
UNSUPPORTED_PEFT = {"ADALORA": "it needs update_and_allocate() called from the training loop every step"}


@strategy("peft")
def peft_method(checkpoint, method: Text = "lora", options: dict[str, object] | None = None) -> Prepared:
    """Any method peft supports for sequence classification, by name: `lora` (with
    `use_dora: true` for DoRA, `use_rslora: true` for rsLoRA), `loha`, `lokr`, `ia3`,
    `prompt_tuning`, `prefix_tuning`, ... `options` are the method's own config fields,
    checked by peft's config dataclass, so a new peft method needs no code here.

    Targets: peft's own mapping for the architecture where it has one, else every linear
    layer of the encoder (peft's `all-linear`). Whatever sits outside the backbone is the
    head and trains in full (peft's default list, "classifier" and "score", misses heads
    such as DistilBERT's pre_classifier).
    """
    import peft  # 3.9 s: see STRATEGIES

    name = method.upper()
    if name not in peft.PEFT_TYPE_TO_CONFIG_MAPPING:
        known = ", ".join(sorted(m.lower() for m in peft.PEFT_TYPE_TO_CONFIG_MAPPING))
        raise BenchError(f"unknown peft method '{method}'; peft {peft.__version__} has: {known}")
    if name in UNSUPPORTED_PEFT:
        raise BenchError(f"peft method '{method}' is not supported: {UNSUPPORTED_PEFT[name]}")
    config_class = peft.PEFT_TYPE_TO_CONFIG_MAPPING[name]
    if issubclass(config_class, peft.PromptLearningConfig) and checkpoint.causal:
        raise BenchError(f"peft method '{method}' cannot classify with {checkpoint.spec}: prompt methods hand a decoder "
                         "embeddings instead of token ids (from which its classifier cannot find each example's last "
                         "real token) or a key-value cache its transformers classifier does not take; use lora or "
                         "another adapter (loha, lokr, ia3, ...)")
    fields = {f.name for f in dataclasses.fields(config_class)}
    options = dict(options or {})
    unknown = sorted(set(options) - fields)
    if unknown:
        raise BenchError(f"peft method '{method}' has no option '{unknown[0]}'; see {config_class.__name__} in peft's docs")
    model = checkpoint.classifier()
    if "target_modules" in fields and options.get("target_modules") is None and not _peft_has_targets(name, model):
        options["target_modules"] = "all-linear"
    if "modules_to_save" in fields and "modules_to_save" not in options:
        options["modules_to_save"] = head_module_names(model)
    if issubclass(config_class, peft.PromptLearningConfig):  # sizes peft reads from config names some families lack
        config = model.config
        sizes = {
            "token_dim": model.get_input_embeddings().embedding_dim,  # what prompts are concatenated to
            "num_layers": getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None),
            "num_attention_heads": getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", None),
        }
        options.update({k: v for k, v in sizes.items() if v is not None and options.get(k) is None})
    try:
        config = config_class(task_type="SEQ_CLS", **options)
        return Prepared(peft.get_peft_model(model, config))
    except (TypeError, ValueError) as err:
        message, hint = first_line(err), ""
        if "target" in message.lower() or "feedforward" in message.lower():
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
            hint = f" -- name them in options; its linear layers are named: {', '.join(linear)}"
        raise BenchError(f"peft {method} on {checkpoint.spec}: {message}{hint}") from None


def _peft_has_targets(method: str, model: nn.Module) -> bool:
    """Whether peft's own table names default target modules of `method` for this architecture."""
    from peft.utils import constants  # 3.9 s: see STRATEGIES

    mapping = getattr(constants, f"TRANSFORMERS_MODELS_TO_{method}_TARGET_MODULES_MAPPING", {})
    return mapping.get(model.config.model_type) is not None


# ----------------------------------------------------------------------------- helpers


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules outside the backbone that hold parameters: the classification head."""
    prefix = model.base_model_prefix
    return [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]


def head_parameter_names(model: nn.Module) -> list[str]:
    heads = tuple(f"{name}." for name in head_module_names(model))
    return [name for name, _ in model.named_parameters() if name.startswith(heads)]


def encoder_layers(model: nn.Module, spec: str = "") -> tuple[str, int]:
    """The name and length of the model's list of transformer layers.

    It is the ModuleList whose length is the config's layer count (bert.encoder.layer,
    roberta.encoder.layer, distilbert.transformer.layer, model.layers for ModernBERT, ...).
    """
    config = model.config
    count = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", None)
    if getattr(config, "num_hidden_groups", count) != count or config.model_type == "albert":
        raise BenchError(
            f"{spec or config.model_type} shares its layer weights across depth (ALBERT), so layers cannot be "
            "selected one by one; use patterns, biases, head, lora or peft"
        )
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return name, count
    raise BenchError(f"cannot find the encoder layers of {type(model).__name__}; select layers with 'patterns' instead")


def summarize_names(names: list[str], limit: int = 10) -> str:
    """Parameter names with layer numbers folded (layer.N), deduplicated, for error messages."""
    folded = list(dict.fromkeys(re.sub(r"\.\d+\.", ".N.", n).rsplit(".", 1)[0] for n in names))
    more = f", ... ({len(folded) - limit} more)" if len(folded) > limit else ""
    return ", ".join(folded[:limit]) + more
