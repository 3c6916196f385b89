"""Pre-flight: everything a suite needs is checked before anything trains.

The hub is reachable or we say so; the processes of a launch are connected; each checkpoint's
config, tokenizer and weight files are there; max_length fits each tokenizer and model; and
every checkpoint x strategy is built on the meta device (a freeze pattern that matches
nothing, or an option peft rejects, fails here), which also counts parameters exactly.
"""

from __future__ import annotations

import os
import socket
import sys

from bench.errors import BenchError, first_line
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import build_model, check_pooling, parameter_counts


def check_checkpoints(suite) -> dict:
    """Config, tokenizer and weight files of every checkpoint: seconds, before the dataset is
    read. Returns which weights each is (checkpoint spec -> hub commit or weights hash)."""

    revisions = {}
    for spec in suite.checkpoints:
        checkpoint = Checkpoint(spec, num_labels=2, meta=True)
        checkpoint.check_weights()
        tokenizer = checkpoint.tokenizer()
        check_room_for_text(tokenizer, suite, spec)
        if checkpoint.pads_with_eos:
            print(f"note: {spec} has no pad token: batches are padded with its end-of-text token "
                  f"{tokenizer.pad_token!r} (id {tokenizer.pad_token_id}), the convention for decoders; each example "
                  "is classified from its last real token (the row's pad_token says so)", file=sys.stderr)
        revisions[spec] = checkpoint.revision_id()
    return revisions


def check_room_for_text(tokenizer, suite, spec: str) -> None:
    """A max_length that the special tokens alone fill leaves no room for the text."""
    pairs = bool(suite.dataset.text_pair_column)
    special = tokenizer.num_special_tokens_to_add(pair=pairs)
    shortest = min(cell.hparams.max_length for cell in suite.cells())
    if shortest <= special:
        raise BenchError(f"max_length {shortest} leaves no room for text: {spec}'s tokenizer adds {special} special tokens "
                         f"to each {'pair' if pairs else 'example'}; set max_length > {special}")


def preflight(suite, num_labels: int) -> dict:
    """Build every checkpoint x strategy on the meta device: catches bad patterns, missing
    checkpoints and wrong options before any training, and counts parameters exactly."""

    counts = {}
    longest = max(cell.hparams.max_length for cell in suite.cells())
    checkpointed = {cell.strategy.name for cell in suite.cells() if cell.hparams.gradient_checkpointing}
    for spec in suite.checkpoints:
        checkpoint = Checkpoint(spec, num_labels, meta=True)
        limit = position_limit(checkpoint.config)
        if limit is not None and longest > limit:
            raise BenchError(f"max_length {longest} is beyond what {spec} can take ({limit} positions); set max_length <= {limit}")
        if suite.screen is not None:
            check_pooling(checkpoint, suite.screen.pooling)
        for strategy in suite.strategies:
            try:
                plan = build_model(strategy.kind, checkpoint, strategy.params)
            except BenchError:
                raise
            except Exception as err:  # noqa: BLE001 - e.g. peft rejecting an option value
                raise BenchError(
                    f"strategy '{strategy.name}' cannot be applied to {spec}: {type(err).__name__}: {first_line(err)}"
                ) from None
            counts[spec, strategy.name] = parameter_counts(plan.model)
            if strategy.name in checkpointed:
                check_checkpointing(plan.model, spec, strategy.name)
    return counts


def check_checkpointing(model, spec: str, strategy: str) -> None:
    """transformers implements gradient checkpointing per architecture; some have none."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise BenchError(f"strategy '{strategy}' sets gradient_checkpointing, which transformers does not implement for "
                         f"{spec} ({type(base).__name__}); remove it for this checkpoint")


def position_limit(config) -> int | None:
    """Tokens a model can take: its position embeddings, less the offset RoBERTa-style models
    reserve (their positions start after the padding index)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    if config.model_type in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= (config.pad_token_id or 0) + 1
    return limit


def go_offline_if_hub_unreachable(suite) -> None:
    """If the suite needs the Hugging Face Hub and it cannot be reached, switch to offline
    mode: cached files still load, and anything uncached fails at once with our one-line
    error instead of minutes of retries. Must run before huggingface_hub is imported."""

    uses_hub = not (suite.dataset.files or suite.dataset.data_dir) or any(
        not (c.startswith("package:") or os.path.isdir(c.partition("#")[0]) or c.partition("#")[0].endswith(".gguf"))
        for c in suite.checkpoints
    )
    offline = os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE")
    if not uses_hub or offline or "huggingface_hub" in sys.modules:  # it reads the setting on import
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=5).close()
    except OSError:
        os.environ["HF_HUB_OFFLINE"] = "1"
        print(f"note: the Hugging Face Hub ({host}) is unreachable; using only locally cached files", file=sys.stderr)


def check_processes_connected(accelerator) -> None:
    """On a machine with no GPU, `accelerate launch --multi_gpu --num_processes 2` starts
    processes that each think they are alone and each train on all the data."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes == 1:
        raise BenchError(
            f"{launched} processes were launched but they are not connected (no GPU found); on CPU run "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N ..."
        )

