"""One run: the cell start to finish (cell.py), its Accelerate loop (loop.py), batches
(batches.py), frozen features computed once (features.py), a halved run's segments and their
saved state (segments.py), torch.compile (compiled.py), clocks, FLOPs and memory (measure.py),
the device (hardware.py) and experiment trackers (tracking.py)."""
