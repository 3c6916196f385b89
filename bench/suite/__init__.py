"""The suite: its file's schema (schema.py), loading it with the launch's overrides (load.py),
and the cells it expands into, each with its run_id, config_id and tuning_id (cells.py)."""
