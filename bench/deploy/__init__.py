"""Trained runs in use: what serving costs (serving.py), exports in transformers' and peft's
formats (export.py), and predicting with a saved run (predict.py)."""
