"""Heads on a frozen backbone (the `head` and `cnn` strategies), and the transformers model
that wraps them for export.

This file imports only torch and transformers: `bench/deploy/export.py` saves it beside an exported
head run (transformers' custom-code mechanism, `register_for_auto_class`), so that
`pipeline("text-classification", model=folder, trust_remote_code=True)` loads the run with no
part of this project installed. The training code and the exported model are the same classes.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


def mlp(size_in: int, hidden: list[int], num_labels: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU (-> Dropout) per hidden size, then Linear to the labels."""
    sizes, layers = [size_in, *hidden], []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers, nn.Linear(sizes[-1], num_labels))


class FrozenBackboneClassifier(nn.Module):
    """A frozen backbone and a trainable head on what it computes.

    The backbone stays in eval mode even while the head trains: it is a fixed feature
    extractor, and dropout inside it would only add noise to the features. Subclasses say
    what the head reads (`features`: one vector per example, or `token_features`: one per
    token, with the attention mask) and how; bench/train/features.py computes it once per example.
    """

    def __init__(self, backbone: nn.Module, num_labels: int):
        super().__init__()
        self.backbone = backbone
        self.num_labels = num_labels
        self.backbone.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()
        return self

    def backbone_output(self, input_ids, attention_mask, token_type_ids=None, all_layers: bool = False):
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        if all_layers:
            extra["output_hidden_states"] = True
        with torch.no_grad():
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra)

    def output(self, logits, labels):
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class PooledHeadClassifier(FrozenBackboneClassifier):
    """An MLP on one pooled vector per example."""

    POOLINGS = ("pooler", "cls", "mean", "max", "last")

    def __init__(self, backbone: nn.Module, num_labels: int, hidden: list[int], pooling: str, dropout: float):
        super().__init__(backbone, num_labels)
        self.pooling = pooling
        self.head = mlp(backbone.config.hidden_size, hidden, num_labels, dropout)

    def pool(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        return self.pool_output(self.backbone_output(input_ids, attention_mask, token_type_ids), attention_mask)

    def pool_output(self, out, attention_mask) -> torch.Tensor:
        """One vector per example from the backbone's output, by this head's pooling."""
        if self.pooling == "pooler":
            return out.pooler_output
        return pool_tokens(out.last_hidden_state, attention_mask, self.pooling)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, features=None):
        """`features`: pooled vectors computed earlier (bench/train/features.py) instead of the backbone."""
        if features is None:
            features = self.pool(input_ids, attention_mask, token_type_ids)
        return self.output(self.head(features), labels)


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per example from token states: the first token (cls), the last real one
    (last), the maximum (max) or the mean (mean) over real tokens."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":  # the last real token, on either padding side: all a decoder's tokens lead to it
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask.bool()).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "max":
        return hidden.masked_fill(~attention_mask.bool().unsqueeze(-1), torch.finfo(hidden.dtype).min).amax(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class TokenCNNClassifier(FrozenBackboneClassifier):
    """The seed notebook's CNN head: 1-D convolutions over the frozen last hidden states (one
    per kernel size), ReLU, max over the windows that start on a real token, concatenated,
    then an MLP to the labels."""

    def __init__(self, backbone, num_labels: int, kernel_sizes: list[int], channels: int, hidden: list[int], dropout: float):
        super().__init__(backbone, num_labels)
        size = backbone.config.hidden_size
        self.convs = nn.ModuleList(nn.Conv1d(size, channels, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = mlp(channels * len(kernel_sizes), hidden, num_labels, dropout)

    def tokens(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The last hidden states, zero at padding (what the cache stores)."""
        hidden = self.backbone_output(input_ids, attention_mask, token_type_ids).last_hidden_state
        return hidden * attention_mask.unsqueeze(-1).to(hidden.dtype)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, token_features=None):
        if token_features is None:
            token_features = self.tokens(input_ids, attention_mask, token_type_ids)
        widest = max(conv.kernel_size[0] for conv in self.convs)
        x = nn.functional.pad(token_features.transpose(1, 2), (0, widest - 1))  # every token starts a full window
        real = attention_mask.bool()
        pooled = []
        for conv in self.convs:
            windows = torch.relu(conv(x.to(conv.weight.dtype)))[..., : real.shape[1]]  # (batch, channels, tokens)
            pooled.append(windows.masked_fill(~real.unsqueeze(1), 0.0).amax(-1))
        return self.output(self.head(self.dropout(torch.cat(pooled, dim=-1))), labels)


HEADS = {"head": PooledHeadClassifier, "cnn": TokenCNNClassifier}


class FrozenHeadConfig(PretrainedConfig):
    """What rebuilds a head run: its kind and options, and the backbone's own config."""

    model_type = "bench-frozen-head"

    def __init__(self, kind: str = "head", options: dict | None = None, backbone: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.options, self.backbone = kind, dict(options or {}), dict(backbone or {})


class FrozenHeadForSequenceClassification(PreTrainedModel):
    """A head run as a transformers model: the backbone (built from its config, weights from
    the saved file) and the trained head, under `model.` (the training module's own names)."""

    config_class = FrozenHeadConfig
    base_model_prefix = "model"

    def __init__(self, config: FrozenHeadConfig):
        super().__init__(config)
        backbone_config = dict(config.backbone)
        backbone = AutoModel.from_config(AutoConfig.for_model(backbone_config.pop("model_type"), **backbone_config))
        self.model = HEADS[config.kind](backbone, config.num_labels, **config.options)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, labels=labels)
