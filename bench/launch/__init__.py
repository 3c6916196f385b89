"""Launching a suite's cells: the launch itself (suite_run.py), which cells and in what order
(plan.py), the screen before any fine-tuning (screen.py), halving's steps at the rungs
(halving.py), one after the other in this process (sequential.py) or on a pool of workers
(pool.py)."""
