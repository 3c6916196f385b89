"""Predict with a saved run (bench/deploy/predict.py): `python bench/predict.py RUN_ID "some text"`."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/predict.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.deploy.predict import main

if __name__ == "__main__":
    sys.exit(main())
