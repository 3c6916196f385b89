"""Checkpoints derived from a real one, as a team weighs them (`SPEC#layers=N`: its first N
layers, cheaper and weaker; `SPEC#reinit`: its architecture, weights drawn afresh, the
no-pretraining control): built from real files, counted exactly, trained, named apart."""

import torch
from conftest import write_suite

from bench.inputs.checkpoints import Checkpoint
from bench.inputs.strategies import parameter_counts
from bench.results.store import read_results
from bench.run import main


def pretrained(bert_dir, folder):
    """The tiny BERT with every weight moved off its seed-0 initialisation, as pretraining would."""
    model = Checkpoint(str(bert_dir), 2).classifier()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(folder)
    Checkpoint(str(bert_dir), 2).tokenizer().save_pretrained(folder)
    return folder


def test_first_layers_and_reinit_are_the_models_they_say(bert_dir, tmp_path):
    bert_dir = pretrained(bert_dir, tmp_path / "pretrained")
    base = Checkpoint(str(bert_dir), 2).classifier()
    one = Checkpoint(f"{bert_dir}#layers=1", 2).classifier()
    assert len(one.bert.encoder.layer) == 1 and one.config.num_hidden_layers == 1
    kept = dict(one.named_parameters())
    for name, p in base.named_parameters():  # the first layer and the embeddings are the base's own weights
        if name.startswith(("bert.embeddings", "bert.encoder.layer.0.")):
            assert torch.equal(p, kept[name]), name
    assert "bert.encoder.layer.1.output.dense.weight" not in kept
    meta = Checkpoint(f"{bert_dir}#layers=1", 2, meta=True).classifier()
    assert parameter_counts(meta) == parameter_counts(one)  # pre-flight counts the derived model exactly
    fresh, again = (Checkpoint(f"{bert_dir}#reinit", 2).classifier() for _ in range(2))
    embeddings = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(dict(fresh.named_parameters())[embeddings], dict(again.named_parameters())[embeddings])  # seed 0
    assert not torch.equal(dict(fresh.named_parameters())[embeddings], dict(base.named_parameters())[embeddings])
    assert all(p.dtype == torch.float32 for p in fresh.parameters())
    revisions = {Checkpoint(spec, 2, meta=True).revision_id() for spec in (str(bert_dir), f"{bert_dir}#layers=1", f"{bert_dir}#reinit")}
    assert len(revisions) == 3


def test_derived_checkpoints_train_in_a_suite_and_bad_ones_are_one_line(tmp_path, bert_dir, data_dir, capsys):
    suite = write_suite(tmp_path, [bert_dir, f"{bert_dir}#layers=1", f"{bert_dir}#reinit"], data_dir,
                        serving={"measure": False})
    report = tmp_path / "derived.csv"
    assert main(["--suite", str(suite), "--output", str(report)]) == 0, capsys.readouterr().err[-2000:]
    rows = {r["checkpoint"]: r for r in read_results(report)}
    assert set(rows) == {str(bert_dir), f"{bert_dir}#layers=1", f"{bert_dir}#reinit"}
    assert rows[f"{bert_dir}#layers=1"]["total_params"] < rows[str(bert_dir)]["total_params"] == rows[f"{bert_dir}#reinit"]["total_params"]
    assert rows[f"{bert_dir}#reinit"]["checkpoint_revision"].endswith("#reinit")
    for bad, message in (("#layers=2", "#layers=2 must be fewer than the 2 layers"), ("#deeper", "cannot derive 'deeper'")):
        suite = write_suite(tmp_path, [f"{bert_dir}{bad}"], data_dir, name="bad")
        capsys.readouterr()
        assert main(["--suite", str(suite), "--output", str(tmp_path / "bad.csv"), "--dry-run"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("error: ") and message in line
