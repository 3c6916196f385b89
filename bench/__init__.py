"""finetune-bench: suites of pretrained checkpoints x fine-tuning strategies, one CSV row per run.

The data path, one subpackage a step (docs/architecture.md):
    suites/<name>.yaml -> bench.suite (schema, overrides, cells and their ids)
    -> bench.inputs (data, checkpoints, strategies, pre-flight) -> bench.train (one run)
    -> bench.results (the row contract, the locked CSV) -> bench.decision (selection, statistics,
    cost, the Decision) -> bench.document (the report's tables, prose, figures, pages)

`bench.launch` runs cells (one after the other, or on a pool of workers); `bench.deploy`
serves, exports and reloads trained runs. The command lines are `bench/run.py`,
`bench/report.py`, `bench/compare.py`, `bench/merge.py` and `bench/predict.py`.

From Python (bench/api.py): `bench.run_suite(suite, **options)` -> DataFrame of rows,
`bench.load_results(*csv)` -> DataFrame, `bench.decide(*csv)` -> the report's Decision.
"""

import importlib

_PUBLIC = {"run_suite": "bench.api", "load_results": "bench.api", "decide": "bench.api", "BenchError": "bench.errors"}


def __getattr__(name: str):
    """The Python API (and its exception) on first use: `import bench` stays light (no torch), so a command's typo
    is answered before the training stack loads."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
