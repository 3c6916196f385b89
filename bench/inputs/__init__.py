"""What a run is made of: the examples (data.py), the pretrained checkpoint (checkpoints.py),
the model a strategy builds from it (strategies.py, heads.py), and the checks before any
training (preflight.py)."""
