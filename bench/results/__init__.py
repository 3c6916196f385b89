"""The results: the row contract, every column declared once (columns.py), the row a run
builds (row.py), the locked append-only CSV store (store.py), shard merging (merge.py), what
sits beside the rows (provenance.py), the screening file (screening.py) and per-example
validation outcomes packed into a row (outcomes.py)."""
