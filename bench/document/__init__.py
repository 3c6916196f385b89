"""The decision as a document: tables (tables.py), prose (prose.py), figures (figures.py),
Markdown and HTML (render.py), and the report command (report.py)."""
