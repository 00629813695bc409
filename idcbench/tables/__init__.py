"""Run directories -> comparison tables and leaderboards (Markdown, CSV, JSON, HTML).

One stage per module, each importing only the ones above it:

- `model`: Cell, Row, Table and how numbers, headers and labels are written (no I/O).
- `runs`: read run directories (RunInfo, discover / load), group seeds of one configuration.
- `stats`: bootstrap statistics of a run's per-sample rows, interval cells, paired tests.
- `build`: `compare` and the leaderboard's tables of each dataset split.
- `markdown`, `csv`, `json`, `html`: renderers of tables (they import `model`, never the other way).
- `publish`: the leaderboard folder (README.md, <dataset>.csv, index.html): build, write, check.
"""
