"""Decoder LLMs as candidates beside encoders: tiny random models from the config classes of nine
decoder families, with a real byte-level BPE tokenizer that has an end-of-text token and no pad
token (as GPT-2's, Llama's and Pythia's have none), loaded through the real checkpoint path.

Exact trainable counts per kind against tables written here by hand from each family's parameter
names; every kind end to end with the suite's defaults; each example classified from its last
real token whatever side the saved tokenizer pads on; pre-flight counts equal to a real build;
gradient checkpointing giving the same losses; a GGUF file as a checkpoint; one-line refusals."""

import csv
import hashlib
import json
import re

import pytest
import torch
import transformers as T
import yaml
from conftest import make_examples, rounding_tolerance, run_cli, write_suite

from bench.errors import BenchError
from bench.inputs.checkpoints import Checkpoint
from bench.inputs.preflight import preflight
from bench.inputs.strategies import build_model, parameter_counts
from bench.results.store import read_results
from bench.run import main
from bench.suite.load import load_suite

EOT = "<|endoftext|>"
SIZE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 512,
            "initializer_range": 0.2}
HEADS_OF = {"head_dim": 16, "num_key_value_heads": 2}  # families whose head size is set apart from hidden / heads
FAMILIES = {
    "llama": (T.LlamaConfig, HEADS_OF),
    "qwen2": (T.Qwen2Config, {"num_key_value_heads": 2}),
    "qwen3": (T.Qwen3Config, HEADS_OF),
    "gemma": (T.GemmaConfig, HEADS_OF),
    "mistral": (T.MistralConfig, HEADS_OF),
    "phi3": (T.Phi3Config, {"num_key_value_heads": 2}),
    "gpt2": (T.GPT2Config, {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128}),
    "gpt_neox": (T.GPTNeoXConfig, {}),
    "opt": (T.OPTConfig, {"ffn_dim": 64, "word_embed_proj_dim": 32}),
}
# Where each family keeps its blocks; its final norm (frozen under top/bottom/layers, as
# ModernBERT's is: it is part of the backbone); the head outside the backbone is `score`.
LAYERS = {"llama": "model.layers", "qwen2": "model.layers", "qwen3": "model.layers", "gemma": "model.layers",
          "mistral": "model.layers", "phi3": "model.layers", "gpt2": "transformer.h", "gpt_neox": "gpt_neox.layers",
          "opt": "model.decoder.layers"}
FINAL_NORM = {"gpt2": "transformer.ln_f", "gpt_neox": "gpt_neox.final_layer_norm", "opt": "model.decoder.final_layer_norm"}
# peft's own LoRA targets (its per-architecture table); Phi-3 has none there: every linear layer.
LORA_TARGETS = {"gpt2": ("c_attn",), "gpt_neox": ("query_key_value",), "phi3": None}
# Qwen2's tokenizer class makes <|endoftext|> its pad token by itself (as Qwen's real tokenizers do).
NAMES_ITS_PAD = {"qwen2"}
KINDS = {"full": ("full", {}), "top1": ("freeze", {"top": 1}), "head": ("head", {"hidden": [8]}), "lora": ("lora", {"r": 4})}


def decoder_tokenizer():
    """Byte-level BPE trained on the test texts, one special token (end of text), no pad token."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([t for t, _ in make_examples(200, seed=3)], vocab_size=400, min_frequency=1, special_tokens=[EOT])
    return T.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOT, bos_token=EOT, unk_token=EOT,
                                     model_input_names=["input_ids", "attention_mask"])


def build_decoder(folder, family: str, padding_side: str = "right", tokenizer=None):
    config_class, extra = FAMILIES[family]
    tokenizer = tokenizer or decoder_tokenizer()
    eot = tokenizer.convert_tokens_to_ids(EOT)
    size = {k: v for k, v in SIZE.items() if family != "gpt2" or k == "initializer_range"}
    config = config_class(**size, **extra, vocab_size=len(tokenizer), bos_token_id=eot, eos_token_id=eot, pad_token_id=None,
                          num_labels=2)
    torch.manual_seed(0)
    T.AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.padding_side = padding_side
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def decoders(tmp_path_factory):
    return {family: build_decoder(tmp_path_factory.mktemp(f"decoder-{family}"), family) for family in FAMILIES}


def expected_trainable(model, family: str, kind: str) -> int:
    """From the plain classifier's parameter names and the tables above."""
    params = dict(model.named_parameters())
    head = sum(p.numel() for n, p in params.items() if n.startswith("score."))
    if kind == "full":
        return sum(p.numel() for p in params.values())
    if kind == "top1":
        return head + sum(p.numel() for n, p in params.items() if n.startswith(f"{LAYERS[family]}.1."))
    if kind == "head":
        return 32 * 8 + 8 + 8 * 2 + 2
    targets = LORA_TARGETS.get(family, ("q_proj", "v_proj"))
    adapted = [m for n, m in model.named_modules() if n.startswith(LAYERS[family]) and hasattr(m, "weight")
               and m.weight.dim() == 2 and isinstance(m, (torch.nn.Linear, T.pytorch_utils.Conv1D))
               and (targets is None or n.rsplit(".", 1)[-1] in targets)]
    return head + sum(4 * sum(m.weight.shape) for m in adapted)  # r x (in + out), nn.Linear or GPT-2's Conv1D


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_trainable_counts_and_preflight_counts_equal_a_real_build(decoders, family):
    plain = Checkpoint(str(decoders[family]), 2).classifier()
    assert plain.config.pad_token_id == Checkpoint(str(decoders[family]), 2).tokenizer().pad_token_id  # set: it had none
    for kind, (strategy, params) in KINDS.items():
        real = parameter_counts(build_model(strategy, Checkpoint(str(decoders[family]), 2), params).model)
        meta = parameter_counts(build_model(strategy, Checkpoint(str(decoders[family]), 2, meta=True), params).model)
        assert real == meta, kind
        assert real["trainable_params"] == expected_trainable(plain, family, kind), kind
    frozen_norm = FINAL_NORM.get(family, "model.norm")
    top = build_model("freeze", Checkpoint(str(decoders[family]), 2), {"top": 1}).model
    assert not any(p.requires_grad for n, p in top.named_parameters() if n.startswith(frozen_norm))


# Every kind a run trains, the seed notebook's CNN head over token states included.
FLOP_KINDS = {**KINDS, "cnn": ("cnn", {"kernel_sizes": [1, 2], "channels": 8}), "prompt": ("peft", {"method": "prompt_tuning", "options": {"num_virtual_tokens": 2}})}


@pytest.mark.parametrize("family", [*FAMILIES, "bert"])
def test_a_steps_flops_are_its_rows_times_one_rows(decoders, bert_dir, family):
    """A run counts one row's FLOPs and multiplies by the step's rows (bench/train/measure.py):
    exact only while every operation FlopCounterMode counts works row by row."""
    from torch.utils.flop_counter import FlopCounterMode

    folder = bert_dir if family == "bert" else decoders[family]
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (5, 12))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0  # rows of a real batch differ in their padding

    def count(model, rows: int) -> int:
        with FlopCounterMode(display=False) as counter:
            model(input_ids=ids[:rows], attention_mask=mask[:rows], labels=torch.zeros(rows, dtype=torch.long)).loss.backward()
        return counter.get_total_flops()

    for kind, (strategy, params) in FLOP_KINDS.items():
        if kind == "prompt" and family != "bert":
            continue  # refused for decoders (test_decoders_refuse_what_they_cannot_do_in_one_line)
        model = build_model(strategy, Checkpoint(str(folder), 2), params).model.train()
        one = count(model, 1)
        assert one > 0 and count(model, 5) == 5 * one, kind


# peft methods beside LoRA: (method, options); where peft itself cannot apply one to a family, the
# message names what to do (Phi-3 is not in peft's IA3 table; peft's LoHa cannot wrap GPT-2's Conv1D).
OTHER_PEFT = {"ia3": {}, "loha": {"r": 4}}
ADAPTER_NAMES = {"ia3": ".ia3_l.", "loha": ".hada_w"}  # peft's names for each method's parameters
PEFT_CANNOT = {("phi3", "ia3"): "feedforward_modules", ("gpt2", "loha"): "Conv1D"}


@pytest.mark.parametrize("method", OTHER_PEFT)
@pytest.mark.parametrize("family", FAMILIES)
def test_other_peft_methods_train_their_parameters_and_the_score_head(decoders, family, method):
    params = {"method": method, "options": OTHER_PEFT[method]}
    if (family, method) in PEFT_CANNOT:
        with pytest.raises(BenchError, match=PEFT_CANNOT[family, method]):
            build_model("peft", Checkpoint(str(decoders[family]), 2), params)
        return
    model = build_model("peft", Checkpoint(str(decoders[family]), 2), params).model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".score." in n for n in trainable) and any(ADAPTER_NAMES[method] in n for n in trainable)
    assert all(".score." in n or ADAPTER_NAMES[method] in n for n in trainable)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids = torch.randint(1, 300, (4, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    for _ in range(2):  # two steps: some adapters start at zero, so their other factor moves only on the second
        model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert {n for n, p in model.named_parameters() if not torch.equal(p, before[n])} == trainable


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_example_is_read_at_its_last_real_token_whatever_side_the_tokenizer_pads(tmp_path, family, side):
    folder = build_decoder(tmp_path / family, family, padding_side=side)
    checkpoint = Checkpoint(str(folder), 2)
    tokenizer = checkpoint.tokenizer()
    assert tokenizer.padding_side == "right" and tokenizer.pad_token == EOT
    assert checkpoint.pads_with_eos == (family not in NAMES_ITS_PAD)
    texts = ["great", "the movie was really terrible and boring", "a superb film"]
    model = checkpoint.classifier().eval()
    head = build_model("head", checkpoint, {"hidden": [4]}).model.eval()
    assert head.pooling == "last"  # the default for a decoder
    padded = tokenizer(texts, padding=True, return_tensors="pt")
    assert padded["attention_mask"].sum(1).tolist() != [padded["input_ids"].shape[1]] * 3  # some rows are padded
    tolerance = rounding_tolerance(model.config, padded["input_ids"].shape[1])
    with torch.no_grad():
        together, pooled = model(**padded).logits, head.pool(**padded)
        for i, text in enumerate(texts):
            alone = tokenizer([text], return_tensors="pt")
            torch.testing.assert_close(together[i], model(**alone).logits[0], **tolerance)
            torch.testing.assert_close(pooled[i], head.pool(**alone)[0], **tolerance)


def test_every_kind_runs_on_every_decoder_family_beside_an_encoder_with_the_suites_defaults(tmp_path, decoders, bert_dir, data_dir):
    strategies = [{"name": "full", "kind": "full"}, {"name": "top1", "kind": "freeze", "top": 1},
                  {"name": "head", "kind": "head"}, {"name": "lora", "kind": "lora"}]
    suite = write_suite(tmp_path, [bert_dir, *decoders.values()], data_dir, strategies=strategies, name="decoders")
    output = tmp_path / "decoders.csv"
    result = run_cli("--suite", suite, "--output", output, "--save")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("has no pad token: batches are padded with its end-of-text token") == \
        len(set(decoders) - NAMES_ITS_PAD)
    rows = read_results(output)
    assert len(rows) == 4 * (len(decoders) + 1) and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        decoder = row["checkpoint"] != str(bert_dir)
        assert row["pad_token"] == (f"{EOT} (id 0 = the end-of-text token)" if decoder else "[PAD] (id 0)")
        assert row["serving_samples_per_s"] > 0 and row["serving_latency_p50_ms"] > 0
        if row["strategy"] == "lora":
            assert row["serving_form"] == "merged" and row["merged_agreement"] == 1.0
    # exports load with the libraries' own loaders and predict what the run recorded
    lora = next(r for r in rows if r["strategy"] == "lora" and r["checkpoint"] == str(decoders["qwen2"]))
    folder = tmp_path / lora["saved_model"]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["pad_token_id"] == 0 and "pad_token_id=0" in manifest["load"]
    from peft import AutoPeftModelForSequenceClassification

    adapter = AutoPeftModelForSequenceClassification.from_pretrained(folder, pad_token_id=0).eval()
    merged = T.pipeline("text-classification", model=str(folder / "merged"), device="cpu")
    with open(tmp_path / lora["predictions_file"]) as f:
        recorded = list(csv.DictReader(f))[:8]
    texts = [t for t, _ in make_examples(37, seed=2)]
    tokenizer = T.AutoTokenizer.from_pretrained(folder)
    for row in recorded:
        text = texts[int(row["idx"])]
        with torch.no_grad():
            logits = adapter(**tokenizer([text], return_tensors="pt")).logits
        assert int(logits.argmax(-1)) == int(row["prediction"])
        assert merged(text)[0]["label"] == merged.model.config.id2label[int(row["prediction"])]


def test_gradient_checkpointing_gives_the_losses_of_the_run_without_it(tmp_path, decoders, data_dir):
    strategies = [{"name": "full", "kind": "full", "epochs": 2}, {"name": "lora", "kind": "lora", "epochs": 2}]
    plain = write_suite(tmp_path, [decoders["llama"]], data_dir, strategies=strategies, name="plain", serving={"measure": False},
                        dataset={"validation_size": 16})
    raw = yaml.safe_load(plain.read_text())
    raw.update(name="checkpointed")
    raw["defaults"]["gradient_checkpointing"] = True
    checkpointed = tmp_path / "checkpointed.yaml"
    checkpointed.write_text(yaml.safe_dump(raw))
    rows = {}
    for name, path in (("plain", plain), ("checkpointed", checkpointed)):
        assert main(["--suite", str(path), "--output", str(tmp_path / f"{name}.csv")]) == 0
        rows[name] = {r["strategy"]: r for r in read_results(tmp_path / f"{name}.csv")}
    for strategy in ("full", "lora"):
        a, b = rows["plain"][strategy], rows["checkpointed"][strategy]
        assert (a["gradient_checkpointing"], b["gradient_checkpointing"]) == (False, True) and a["run_id"] != b["run_id"]
        # the forward pass recomputed in the backward one is the same computation on CPU: bit for bit
        assert [(h["train_loss"], h["validation_loss"]) for h in a["history"]] == \
               [(h["train_loss"], h["validation_loss"]) for h in b["history"]]
        assert (a["test_loss"], a["test_accuracy"]) == (b["test_loss"], b["test_accuracy"])


def test_a_gguf_file_is_a_checkpoint(tmp_path, data_dir, capsys):
    gguf_file, source = write_tiny_gguf(tmp_path / "gguf" / "tiny-llama.gguf")
    checkpoint = Checkpoint(str(gguf_file), 2)  # read once into a Hugging Face folder: the same model, the same tokens
    ids = torch.tensor([checkpoint.tokenizer()("the movie was great")["input_ids"]])
    assert "from GGUF (dequantised to fp32) once" in capsys.readouterr().err
    assert ids[0].tolist() == decoder_tokenizer()("the movie was great")["input_ids"]
    with torch.no_grad():
        assert torch.equal(T.AutoModelForCausalLM.from_pretrained(checkpoint.path)(ids).logits, source(ids).logits)
    suite = write_suite(tmp_path, [gguf_file], data_dir, strategies=[{"name": "lora", "kind": "lora"}], name="gguf",
                        serving={"measure": False})
    first = run_cli("--suite", suite, "--output", tmp_path / "gguf.csv")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "from GGUF" not in first.stderr  # converted above, read from the cache since
    (row,) = read_results(tmp_path / "gguf.csv")
    assert row["status"] == "ok" and row["checkpoint_revision"] == "sha256:" + hashlib.sha256(gguf_file.read_bytes()).hexdigest()[:16]


def test_decoders_refuse_what_they_cannot_do_in_one_line(tmp_path, decoders, data_dir, capsys):
    cases = [
        ({"name": "h", "kind": "head", "pooling": "cls"}, "pooling 'cls' cannot summarise a text with .*use pooling: last"),
        ({"name": "h", "kind": "head", "pooling": "pooler"}, "a decoder has no pooler; use pooling: last"),
        ({"name": "c", "kind": "freeze", "top": 1, "cache_frozen": True}, "cache_frozen cannot be used with .*a decoder"),
        ({"name": "g", "kind": "head", "gradient_checkpointing": True}, "gradient_checkpointing .* head strategy"),
        ({"name": "p", "kind": "peft", "method": "prompt_tuning", "options": {"num_virtual_tokens": 4}},
         "prompt methods hand a decoder embeddings instead of token ids"),
    ]
    bare = decoder_tokenizer()  # a tokenizer with neither a pad nor an end-of-text token
    bare.eos_token = bare.bos_token = bare.unk_token = None
    no_eos = build_decoder(tmp_path / "bare", "llama", tokenizer=bare)
    cases.append(({"name": "full", "kind": "full"}, "neither a pad token nor an end-of-text"))
    for i, (strategy, message) in enumerate(cases):
        checkpoint = no_eos if i == len(cases) - 1 else decoders["llama"]
        suite = write_suite(tmp_path, [checkpoint], data_dir, strategies=[strategy], name="bad")
        capsys.readouterr()
        assert main(["--suite", str(suite), "--output", str(tmp_path / "bad.csv")]) == 2
        err = capsys.readouterr().err
        (line,) = [line for line in err.strip().splitlines() if not line.startswith("note:")]  # one line, no traceback
        assert line.startswith("error:") and re.search(message, line), line
        assert not (tmp_path / "bad.csv").exists()


def test_preflight_of_a_mixed_suite_counts_what_a_real_build_counts(tmp_path, decoders, bert_dir, data_dir):
    strategies = [{"name": n, "kind": k, **p} for n, (k, p) in KINDS.items()]
    suite = load_suite(str(write_suite(tmp_path, [bert_dir, decoders["gpt2"], decoders["opt"]], data_dir, strategies=strategies)))
    counts = preflight(suite, 2)
    for (spec, name), figures in counts.items():
        kind, params = KINDS[name]
        assert figures == parameter_counts(build_model(kind, Checkpoint(spec, 2), params).model)


def write_tiny_gguf(path):
    """A 2-layer Llama written as llama.cpp writes one (the gguf package's writer, fp32 tensors
    under llama.cpp's names), with the test tokenizer as a GPT-2-style BPE vocabulary."""
    import gguf

    tokenizer = decoder_tokenizer()
    config = T.LlamaConfig(**SIZE, **HEADS_OF, vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(config)
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if token == EOT else gguf.TokenType.NORMAL for token, _ in vocab])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for name, tensor in model.state_dict().items():
        if name.startswith("model.layers."):
            _, _, index, *module, kind = name.split(".")
            gguf_name = f"blk.{index}.{per_layer['.'.join(module)]}.{kind}"
        else:
            gguf_name = names[name]
        data = tensor.float().numpy()
        if gguf_name.endswith(("attn_q.weight", "attn_k.weight")):  # llama.cpp stores q and k permuted for its rope
            heads = config.num_attention_heads if "attn_q" in gguf_name else config.num_key_value_heads
            data = data.reshape(heads, 2, data.shape[0] // heads // 2, *data.shape[1:]).swapaxes(1, 2).reshape(data.shape)
        writer.add_tensor(gguf_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, model.eval()


def test_the_hub_suite_of_decoders_and_encoders_dry_runs_from_a_hub_cache(tmp_path, data_dir):
    """suites/llm.yaml names four hub models; a hub cache (huggingface_hub's layout) holding tiny
    random models of their families under their names stands in for the hub."""
    from conftest import _bert_tokenizer

    hub = tmp_path / "hub"
    commit = "3" * 40

    def snapshot(repo: str):
        folder = hub / f"models--{repo.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text(commit)
        return folder / "snapshots" / commit

    build_decoder(snapshot("Qwen/Qwen2.5-0.5B"), "qwen2")
    build_decoder(snapshot("HuggingFaceTB/SmolLM2-360M"), "llama")
    size = {**SIZE, "vocab_size": 1000, "pad_token_id": 0}
    for repo, config in (("answerdotai/ModernBERT-base", T.ModernBertConfig(**size, global_attn_every_n_layers=1, local_attention=16)),
                         ("microsoft/deberta-v3-base", T.DebertaV2Config(**size))):
        folder = snapshot(repo)
        T.AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
        _bert_tokenizer(folder).save_pretrained(folder)
    env = {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    result = run_cli("--suite", "llm", "--dry-run", "--data-dir", data_dir, "--train-size", 48, "--validation-size", 16,
                     "--eval-size", 32, "--output", tmp_path / "llm.csv", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = [line for line in result.stdout.splitlines() if "learning_rate=" in line]
    assert len(listed) == 4 * (3 + 3)  # four checkpoints x (head, LoRA) x three learning rates
    assert all(repo in result.stdout for repo in ("Qwen/Qwen2.5-0.5B", "SmolLM2-360M", "ModernBERT-base", "deberta-v3-base"))
    assert not (tmp_path / "llm.csv").exists()
