#!/usr/bin/env bash
# On the device: a short check when little device time is left. LoRA on the fp16-stored
# MiniLM (2 epochs, 6,000 reviews), full fine-tuning of a bert-base-sized model (1 epoch),
# and the bare CUDA-graph loop on the same shape; full logs in $OUT.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
[ -d /tmp/site/datasets ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
[ -f .gpu/data/imdb/train.csv ] || bash .gpu/unpack.sh || exit 1
python3 - <<'PY'
import os, yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
if not os.path.isdir("/tmp/bertbase"):
    BertForSequenceClassification(BertConfig(num_labels=2)).save_pretrained("/tmp/bertbase")
    AutoTokenizer.from_pretrained(".gpu/minilm").save_pretrained("/tmp/bertbase")
for name, keep in (("gpu-minilm", "lora-r8"), ("gpu-bertbase", "full")):
    suite = yaml.safe_load(open(f".gpu/suites/{name}.yaml"))
    suite["strategies"] = [s for s in suite["strategies"] if s["name"] == keep]
    yaml.safe_dump(suite, open(f".gpu/suites/{name}-quick.yaml", "w"), sort_keys=False)
PY
for s in gpu-minilm-quick gpu-bertbase-quick; do
  /usr/bin/time -f "$s wall %e s" accelerate launch -q bench/run.py --suite .gpu/suites/$s.yaml --output "$OUT/$s.csv" > "$OUT/$s.log" 2>&1
  grep -E "Traceback|Error|error|wall|->" "$OUT/$s.log" | grep -v UserWarning | tail -12
done
python3 .gpu/bare_loop.py /tmp/bertbase .gpu/data/imdb/train.csv --batch 16 --length 128 --mode reduce-overhead 2>&1 | grep -E '^\{|Error' | tee "$OUT/bare_loop.jsonl"
python3 - "$OUT" <<'PY'
import csv, glob, json, os, sys
out = sys.argv[1]
bare = [json.loads(l) for l in open(os.path.join(out, "bare_loop.jsonl")) if l.startswith("{")]
for f in sorted(glob.glob(os.path.join(out, "gpu-*.csv"))):
    for r in csv.DictReader(open(f)):
        num = lambda k: float(r[k]) if r.get(k) else float("nan")
        print(r["suite"], r["strategy"], r["status"], "acc", r["test_accuracy"], "samples/s", r["train_samples_per_s"], "steady", r["steady_train_samples_per_s"],
              "compile_s", r["compile_seconds"], "pad", r["padding_waste"], "mfu", r["mfu"], (r.get("error") or "")[:200])
        if r["strategy"] == "full" and r["status"] == "ok" and bare:
            print(f"  full fine-tuning: runner steady / bare reduce-overhead = {num('steady_train_samples_per_s') / bare[0]['samples_per_s']:.2f}")
PY
