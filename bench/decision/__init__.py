"""From rows to a decision: the report's rows read and checked (rows.py), the selection
protocol and halving's rung rule (selection.py), configurations from rows (configs.py),
statistics (stats.py), training cost (cost.py) and serving cost (serving_cost.py), the screen's
scores (transferability.py) and rule (screening.py), what a budgeted decision cost against the
full grid (budget.py), the Decision (decide.py), the regression gate (compare.py); numbers as
sentences write them (text.py)."""
