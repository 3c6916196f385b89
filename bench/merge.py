"""Combine shard reports into one (bench/results/merge.py): python bench/merge.py a.csv b.csv --output all.csv"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/merge.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.results.merge import main

if __name__ == "__main__":
    sys.exit(main())
