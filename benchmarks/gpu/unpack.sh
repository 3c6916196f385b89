#!/usr/bin/env bash
# On the device, before .gpu/on-device.sh: restores .gpu/data/imdb/train.csv (the same
# 6,000-review sample ../shared/gpu/prepare drew) and writes the seed workload's data.
set -euo pipefail
python3 - <<'PY'
import lzma, os
import pandas as pd
with lzma.open(".gpu/seed/train.csv.xz") as f:
    train = pd.read_csv(f)
os.makedirs("/tmp/seed-data/imdb", exist_ok=True)
train.sample(n=6000, random_state=1).to_csv(".gpu/data/imdb/train.csv", index=False)
train.to_csv("/tmp/seed-data/imdb/train.csv", index=False)
with lzma.open(".gpu/seed/test.csv.xz") as f:
    pd.read_csv(f).to_csv("/tmp/seed-data/imdb/test.csv", index=False)
print("unpacked: .gpu/data/imdb/train.csv (6,000), /tmp/seed-data/imdb (25,000 train / 5,000 test)")
PY
