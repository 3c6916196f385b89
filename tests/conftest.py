"""Shared test fixtures: tiny real checkpoints and a small learnable dataset, built locally.

Nothing here reaches the network: models are random tiny BERT / RoBERTa / DistilBERT
built from their config classes and saved in Hugging Face layout, with real tokenizers
(WordPiece from a vocabulary file, byte-level BPE trained on the test texts).
"""

import contextlib
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

# Before any Hugging Face import: no hub, and caches inside a throwaway folder.
_CACHE = tempfile.mkdtemp(prefix="bench-tests-hf-")
os.environ.setdefault("HF_HOME", _CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest
import torch
import yaml

from bench.launch.pool import slots_for

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

POSITIVE = ["great", "wonderful", "superb", "brilliant"]
NEGATIVE = ["awful", "boring", "terrible", "dreadful"]
FILLER = ["the", "movie", "plot", "actor", "scene", "film", "story", "was", "and", "it", "a", "very", "really", "this", "of", "with"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Tiny BERT from the project's notes: 66,722 parameters as a 2-label classifier.
TINY = {"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def make_examples(count: int, seed: int) -> list[tuple[str, int]]:
    """Reviews whose label is decided by one sentiment word among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = i % 2
        words = rng.choices(FILLER, k=rng.randint(6, 14))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """train.csv (96 rows) and test.csv (37 rows: odd, so 2 processes need padding)."""
    folder = tmp_path_factory.mktemp("data")
    write_csv(folder / "train.csv", make_examples(96, seed=1))
    write_csv(folder / "test.csv", make_examples(37, seed=2))
    return folder


def _bert_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    vocab = folder / "vocab-source.txt"
    vocab.write_text("\n".join(SPECIAL + sorted(set(POSITIVE + NEGATIVE + FILLER))) + "\n")
    # `vocab=`, not `vocab_file=`: transformers 5 silently ignores vocab_file (see NOTES).
    return BertTokenizerFast(vocab=str(vocab))


def _bpe_tokenizer():
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = [text for text, _ in make_examples(200, seed=3)]
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return RobertaTokenizerFast(tokenizer_object=bpe._tokenizer)


def build_checkpoint(folder: Path, family: str, **config_overrides) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    if family == "bert":
        config = BertConfig(**{**TINY, **config_overrides})
        model, tokenizer = BertForSequenceClassification(config), _bert_tokenizer(folder)
    elif family == "roberta":
        config = RobertaConfig(**{**TINY, "vocab_size": 400, "max_position_embeddings": 66, "pad_token_id": 1, **config_overrides})
        model, tokenizer = RobertaForSequenceClassification(config), _bpe_tokenizer()
    elif family == "distilbert":
        config = DistilBertConfig(**{"vocab_size": 1000, "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, **config_overrides})
        model, tokenizer = DistilBertForSequenceClassification(config), _bert_tokenizer(folder)
    else:
        raise ValueError(family)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="session")
def roberta_dir(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("tiny-roberta"), "roberta")


@pytest.fixture(scope="session")
def distilbert_dir(tmp_path_factory) -> Path:
    return build_checkpoint(tmp_path_factory.mktemp("tiny-distilbert"), "distilbert")


# Serving measured as in a real suite, over few calls: a tiny model answers in about a millisecond.
QUICK_SERVING = {"batch_sizes": [8], "min_calls": 5, "min_seconds": 0.0, "throughput_min_calls": 2, "warmup_calls": 1, "texts": 16}


def write_suite(folder: Path, checkpoints, data_dir: Path, strategies=None, name="tiny", dataset=None, serving=None,
                tracking=None, **defaults) -> Path:
    """A suite YAML over the test data; the defaults keep a run to a second or two. `dataset`:
    more dataset fields (validation_size, train_sizes, ...); `serving`: the serving settings
    (default: a quick measurement)."""
    suite = {
        "name": name,
        # data_dir None: the dataset's source is in `dataset` (a hub name, files)
        "dataset": {**({"data_dir": str(data_dir)} if data_dir else {}), "train_split": "train", "eval_split": "test",
                    **(dataset or {})},
        "checkpoints": [str(c) for c in checkpoints],
        # fp32 unless a test asks otherwise: `auto` would pick bf16 on CPUs that have it
        "defaults": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_length": 32, "seeds": [0],
                     "mixed_precision": "no", **defaults},
        "strategies": strategies or [{"name": "full", "kind": "full"}],
        "serving": QUICK_SERVING if serving is None else serving,
        **({"tracking": tracking} if tracking else {}),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def rounding_tolerance(config, length: int) -> dict:
    """rtol and atol for comparing two float32 computations of one forward pass that sum in
    other orders: another batch shape or padding (a GEMM's blocking and kernel follow the
    shape), another process's batches, a merged weight. Exact equality is impossible there;
    what rounding alone can make is bounded by u * n per sum of n terms (u = 2**-24, Higham's
    bound for a dot product), n the model's widest sum (hidden, feed-forward or sequence
    length), over the sums one after another along the pass: 8 a layer (query/key/value,
    scores, softmax, context, output, two feed-forward, normalisation) plus pooler and head.
    For the tiny BERT at length 32: 18 x 64 x 6e-8 = 6.9e-5. A bug of the kind these tests
    look for (a padded position attended to, an example counted twice) moves logits by 1e-3
    or more."""
    widths = ("hidden_size", "dim", "intermediate_size", "hidden_dim", "ffn_dim")  # getattr: each family's names
    gpt2_mlp = 4 * config.hidden_size if getattr(config, "model_type", "") == "gpt2" else 0  # its n_inner: None = 4 x hidden
    width = max(length, gpt2_mlp, *(getattr(config, k, None) or 0 for k in widths))
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    bound = (8 * layers + 2) * width * torch.finfo(torch.float32).eps / 2
    return {"rtol": bound, "atol": bound}


@contextlib.contextmanager
def a_workers_cores(workers: int = 2):
    """Run what follows (in this process and in the processes it starts) on the cores that
    `--workers N` gives its first worker, so a sequential run has a worker's thread count.

    torch splits a reduction over its threads; another thread count sums in another order and
    a run's losses then differ in their last bits, which training can grow to 1e-4 and more
    (seen: rel 2.3e-4 on an AMD EPYC). The same threads on the same CPU give the same sums, so
    a pool's rows can be compared with a sequential run's for equality."""
    cores, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, slots_for(workers, 1)[0].cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(threads)


def run_cli(*args, env=None, timeout=600, unprivileged=False) -> subprocess.CompletedProcess:
    """`python bench/run.py ARGS` as a user runs it. `unprivileged`: when the tests run as root,
    without root's right to write anywhere (so file permissions apply as they do to a user)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        preexec_fn=_drop_root_file_rights if unprivileged and os.geteuid() == 0 else None,
    )


def _drop_root_file_rights() -> None:
    """Remove CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set before exec:
    root then keeps only the rights a file's mode gives its owner."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for capability in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
