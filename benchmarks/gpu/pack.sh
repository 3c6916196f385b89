#!/usr/bin/env bash
# Run here after ../shared/gpu/prepare (project root, virtualenv active): adds what the seed
# workload needs to the ignored .gpu/ folder, under the 64 MiB a device call carries. The
# full IMDB train split goes compressed (the check's 6,000-review sample is re-drawn from it
# on the device by unpack.sh, exactly as prepare drew it), with a fixed-seed 5,000-review
# sample of the test split.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -d .gpu/minilm ] || { echo "run ../shared/gpu/prepare first" >&2; exit 2; }
mkdir -p .gpu/seed
python - <<'PY'
import lzma
import pandas as pd
data = "../shared/data/imdb"
with open(f"{data}/train.csv", "rb") as src, lzma.open(".gpu/seed/train.csv.xz", "wb", preset=9) as dst:
    dst.write(src.read())
test = pd.read_csv(f"{data}/test.csv").sample(n=5000, random_state=42)
with lzma.open(".gpu/seed/test.csv.xz", "wt", preset=9) as dst:
    test.to_csv(dst, index=False)
PY
rm -f .gpu/data/imdb/train.csv
cp benchmarks/gpu/unpack.sh .gpu/
du -sm .gpu
