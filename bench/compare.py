"""A regression gate against a reference report (bench/decision/compare.py): python -m bench.compare new.csv reference.csv"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/compare.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.decision.compare import main

if __name__ == "__main__":
    sys.exit(main())
