"""The decision report (bench/document/report.py): python -m bench.report reports/x.csv"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/report.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.document.report import main

if __name__ == "__main__":
    sys.exit(main())
