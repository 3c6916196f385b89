"""From rows to a decision: the selection protocol (selection.py), statistics (stats.py),
training cost (cost.py) and serving cost (serving_cost.py), the Decision (decide.py), the
regression gate (compare.py); numbers as sentences write them (text.py)."""
