"""Strategies across encoder families, on tiny random models built from each family's config
class and loaded through the real checkpoint path: exact trainable counts per kind (against
tables written here by hand from each family's parameter names, not from our resolver), one
optimizer step that changes exactly the trainable tensors, exact frozen-bottom caching, and
clear errors where a kind cannot apply."""

import copy

import pytest
import torch
import transformers as T
from conftest import _bert_tokenizer, make_examples, rounding_tolerance, run_cli, write_csv, write_suite

from bench.errors import BenchError
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import build_model, parameter_counts
from bench.train.features import FrozenPrefix, to_suffix_model

TINY = {"vocab_size": 1000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
            "max_position_embeddings": 128, "initializer_range": 0.5}  # large weights: a wrong cache shows
# The BERT WordPiece test tokenizer serves every family: [PAD]=0, [CLS]=2, [SEP]=3.
SPECIAL_IDS = {"pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3, "cls_token_id": 2, "sep_token_id": 3}
FAMILIES = {
    "bert": (T.BertConfig, T.BertForSequenceClassification, {}),
    "roberta": (T.RobertaConfig, T.RobertaForSequenceClassification, {}),
    "xlm-roberta": (T.XLMRobertaConfig, T.XLMRobertaForSequenceClassification, {}),
    "distilbert": (T.DistilBertConfig, T.DistilBertForSequenceClassification, {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64}),
    "albert": (T.AlbertConfig, T.AlbertForSequenceClassification, {"embedding_size": 16}),
    "deberta-v2": (T.DebertaV2Config, T.DebertaV2ForSequenceClassification, {"relative_attention": True, "pos_att_type": ["p2c", "c2p"]}),
    "electra": (T.ElectraConfig, T.ElectraForSequenceClassification, {"embedding_size": 16}),
    "mpnet": (T.MPNetConfig, T.MPNetForSequenceClassification, {}),
    "modernbert": (T.ModernBertConfig, T.ModernBertForSequenceClassification, {"global_attn_every_n_layers": 1, "local_attention": 16}),
}
# Where each family keeps its transformer layers, and what sits outside its backbone (the head).
LAYERS = {
    "bert": "bert.encoder.layer", "roberta": "roberta.encoder.layer", "xlm-roberta": "roberta.encoder.layer",
    "distilbert": "distilbert.transformer.layer", "deberta-v2": "deberta.encoder.layer", "electra": "electra.encoder.layer",
    "mpnet": "mpnet.encoder.layer", "modernbert": "model.layers",
}
HEADS = {
    "bert": ["classifier"], "roberta": ["classifier"], "xlm-roberta": ["classifier"], "distilbert": ["pre_classifier", "classifier"],
    "albert": ["classifier"], "deberta-v2": ["pooler", "classifier"], "electra": ["classifier"], "mpnet": ["classifier"],
    "modernbert": ["head", "classifier"],
}
# peft's own LoRA targets where it has them; elsewhere every linear layer of the backbone (all-linear).
LORA_TARGETS = {"bert": ("query", "value"), "roberta": ("query", "value"), "xlm-roberta": ("query", "value"),
                "electra": ("query", "value"), "deberta-v2": ("query_proj", "value_proj")}
KINDS = {
    "full": {},
    "freeze-top": {"top": 1},
    "bitfit": {"biases": True},
    "head-max": {"hidden": [8], "pooling": "max"},
    "lora": {"r": 4},
    "cnn": {"kernel_sizes": [2, 3], "channels": 4},
}


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    folders = {}
    for family, (config_class, model_class, extra) in FAMILIES.items():
        folder = tmp_path_factory.mktemp(f"family-{family}")
        size = {"vocab_size": 1000, "max_position_embeddings": 128, "initializer_range": 0.5} if family == "distilbert" else TINY
        torch.manual_seed(0)
        model_class(config_class(**{**size, **SPECIAL_IDS, **extra}, num_labels=2)).save_pretrained(folder)
        _bert_tokenizer(folder).save_pretrained(folder)
        folders[family] = folder
    return folders


def plan_for(family_dirs, family, kind):
    strategy = {"freeze-top": "freeze", "bitfit": "freeze", "head-max": "head"}.get(kind, kind)
    return build_model(strategy, Checkpoint(str(family_dirs[family]), 2), KINDS[kind])


def expected_trainable(model, family, kind) -> int:
    """From the plain classifier's parameter names and the tables above."""
    params = dict(model.named_parameters())
    head = sum(p.numel() for n, p in params.items() if n.split(".")[0] in HEADS[family])
    if kind == "full":
        return sum(p.numel() for p in params.values())
    if kind == "freeze-top":
        return head + sum(p.numel() for n, p in params.items() if n.startswith(f"{LAYERS[family]}.1."))
    if kind == "bitfit":
        return head + sum(p.numel() for n, p in params.items() if n.endswith(".bias") and n.split(".")[0] not in HEADS[family])
    if kind == "head-max":
        return 32 * 8 + 8 + 8 * 2 + 2
    if kind == "cnn":  # Conv1d(32 -> 4, k) for k = 2, 3, then Linear(2 x 4 -> 2)
        return (4 * 32 * 2 + 4) + (4 * 32 * 3 + 4) + (8 * 2 + 2)
    base = model.base_model_prefix
    targets = [
        m for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith(f"{base}.")
        and (family not in LORA_TARGETS or n.rsplit(".", 1)[-1] in LORA_TARGETS[family])
    ]
    return head + sum(4 * (m.in_features + m.out_features) for m in targets)


CASES = [(f, k) for f in FAMILIES for k in KINDS if not (f == "albert" and k == "freeze-top")]


@pytest.mark.parametrize("family, kind", CASES)
def test_exact_trainable_counts(family_dirs, family, kind):
    plain = Checkpoint(str(family_dirs[family]), 2).classifier()
    plan = plan_for(family_dirs, family, kind)
    assert parameter_counts(plan.model)["trainable_params"] == expected_trainable(plain, family, kind)


@pytest.mark.parametrize("family, kind", CASES)
def test_training_steps_change_exactly_the_trainable_tensors(family_dirs, family, kind):
    torch.manual_seed(0)
    model = plan_for(family_dirs, family, kind).model
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    ids = torch.randint(5, 1000, (4, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    for _ in range(2):  # two steps: LoRA's B starts at zero, so A gets no gradient before B has moved
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("albert", "modernbert")])
def test_cached_frozen_bottom_computes_what_the_model_does(family_dirs, family):
    plan = build_model("freeze", Checkpoint(str(family_dirs[family]), 2), {"top": 1, "cache_frozen": True})
    model = plan.model.eval()
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
        cached = FrozenPrefix(model, plan.frozen_prefix)(ids, mask)
        suffix = to_suffix_model(copy.deepcopy(model), plan.frozen_prefix).eval()
        logits = suffix(inputs_embeds=cached, attention_mask=mask).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "family, params, message",
    [
        ("albert", {"top": 1}, "shares its layer weights across depth"),
        ("albert", {"layers": [0]}, "shares its layer weights across depth"),
        ("modernbert", {"top": 1, "cache_frozen": True}, "cache_frozen cannot be used"),
    ],
)
def test_kinds_that_cannot_apply_say_so(family_dirs, family, params, message):
    with pytest.raises(BenchError, match=message):
        build_model("freeze", Checkpoint(str(family_dirs[family]), 2, meta=True), params)  # the dry-run path


H, BERT_LAYERS = 32, 2


@pytest.mark.parametrize(
    "method, options, adapters",
    [
        ("lora", {"r": 4, "use_dora": True}, BERT_LAYERS * 2 * (4 * (H + H) + H)),  # + DoRA's magnitude per output
        ("lora", {"r": 4, "use_rslora": True}, BERT_LAYERS * 2 * 4 * (H + H)),  # same size, other scaling
        ("loha", {"r": 4, "target_modules": ["query", "value"]}, BERT_LAYERS * 2 * 2 * 4 * (H + H)),  # two factor pairs
        # peft's BERT targets key, value, output.dense (attention's and the FFN's); output.dense is
        # feed-forward: scaled on its inputs (32 and 64), the others on their outputs (32 each)
        ("ia3", {}, BERT_LAYERS * (H + H + H + 64)),
        ("prompt_tuning", {"num_virtual_tokens": 5}, 5 * H),
    ],
)
def test_peft_methods_by_name(family_dirs, method, options, adapters):
    plan = build_model("peft", Checkpoint(str(family_dirs["bert"]), 2), {"method": method, "options": options})
    head = H * 2 + 2
    assert parameter_counts(plan.model)["trainable_params"] == adapters + head


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("lorra", {}, "unknown peft method 'lorra'; peft .* has: .*lora"),
        ("lora", {"rank": 4}, "peft method 'lora' has no option 'rank'"),
        ("adalora", {}, "not supported: it needs update_and_allocate"),
        ("lora", {"r": 0}, "`r` should be a positive integer"),
    ],
)
def test_peft_bad_methods_and_options(family_dirs, method, options, message):
    with pytest.raises(BenchError, match=message):
        build_model("peft", Checkpoint(str(family_dirs["bert"]), 2, meta=True), {"method": method, "options": options})


@pytest.mark.slow
def test_a_suite_mixing_families_runs_end_to_end(tmp_path, family_dirs):
    data = tmp_path / "data"
    write_csv(data / "train.csv", make_examples(48, seed=1))
    write_csv(data / "test.csv", make_examples(20, seed=2))
    families = ["bert", "deberta-v2", "electra", "mpnet", "modernbert", "distilbert"]
    suite = write_suite(tmp_path, [family_dirs[f] for f in families], data, max_length=24,
                        strategies=[{"name": "lora", "kind": "lora", "r": 4}, {"name": "bitfit", "kind": "freeze", "biases": True},
                                    {"name": "prompt", "kind": "peft", "method": "prompt_tuning", "options": {"num_virtual_tokens": 4}}])
    output = tmp_path / "families.csv"
    result = run_cli("--suite", suite, "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    from bench.results.store import read_rows

    rows = read_rows(output)
    assert len(rows) == 3 * len(families) and {r["status"] for r in rows} == {"ok"}


@pytest.mark.parametrize("family", ["bert", "distilbert", "modernbert"])
def test_cnn_head_on_cached_token_states_computes_what_it_does_on_tokens(family_dirs, family):
    model = plan_for(family_dirs, family, "cnn").model.eval()
    ids = torch.randint(5, 1000, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # a row shorter than some windows: padding must not win the max
    with torch.no_grad():
        direct = model(input_ids=ids, attention_mask=mask).logits
        cached = model(token_features=model.tokens(ids, mask), attention_mask=mask).logits
        # what a batch cut to a narrower width (the row's own length) computes for the short row
        alone = model(input_ids=ids[1:2, :4], attention_mask=mask[1:2, :4]).logits
    torch.testing.assert_close(cached, direct)
    torch.testing.assert_close(alone, direct[1:2], **rounding_tolerance(model.backbone.config, 12))  # another width
