#!/usr/bin/env bash
# On the device (after unpack.sh): the seed notebook's whole workload (parts 2 and 3: five
# runs of 2 epochs over 25,000 reviews, 5,000 evaluated) as two suite launches, timed end to
# end (process start, data, tokenization, loading, compilation, training, evaluation).
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
[ -d /tmp/site/datasets ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
[ -f /tmp/seed-data/imdb/train.csv ] || bash .gpu/unpack.sh || exit 1
python3 - <<'PY'
import os
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification
for path, model in (("/tmp/bertbase", lambda: BertForSequenceClassification(BertConfig(num_labels=2))),
                    ("/tmp/robertabase", lambda: RobertaForSequenceClassification(RobertaConfig(num_labels=2, vocab_size=50265, max_position_embeddings=514, type_vocab_size=1)))):
    if not os.path.isdir(path):
        model().save_pretrained(path)
        AutoTokenizer.from_pretrained(".gpu/minilm").save_pretrained(path)  # WordPiece ids < 30,522 fit either vocabulary
PY
start=$(date +%s.%N)
for s in seed-models seed-freezing; do
  accelerate launch -q bench/run.py --suite benchmarks/gpu/$s.yaml --output "$OUT/seed-workload.csv" 2>&1 \
    | grep -vE '%\||Loading weights|LOAD REPORT|MISSING|^Key|^-+\+|^Notes|^$' | tail -8
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
