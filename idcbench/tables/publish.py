"""The leaderboard folder: ``README.md``, ``<dataset>.csv`` and ``index.html`` from the run directories; write only
what changed (`build_leaderboard`), or say what differs (`check_leaderboard`, for CI). The demo and CI call these.

A row links to the report page (`idcbench report RUN --out <folder>/NAME.html`) of one of its runs when the page lies
beside ``index.html``: `find_reports` reads the spec hash each report names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

from idcbench import bootstrap as bs
from idcbench.errors import UserError
from idcbench.files import write_atomic
from idcbench.spec import path_component
from idcbench.tables.build import Progress, leaderboard_tables
from idcbench.tables.csv import tables_csv
from idcbench.tables.html import RUN_META, leaderboard_html
from idcbench.tables.markdown import leaderboard_markdown
from idcbench.tables.model import Table


_REPORT_RUN = re.compile(rf'<meta name="{RUN_META}" content="([0-9a-f]+)">')


def find_reports(out_dir: str | Path) -> dict[str, str]:
    """Spec hash -> file name of the run reports directly under `out_dir` (the first name in sorted order when a run
    has several); pages that name no run (index.html, anything else) are ignored."""
    found: dict[str, str] = {}
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return found
    for path in sorted(out_dir.glob("*.html")):
        try:
            with path.open("rb") as f:
                head = f.read(2048).decode("utf-8", "replace")  # the meta tag sits right after <meta charset>
        except OSError:
            continue
        m = _REPORT_RUN.search(head)
        if m:
            found.setdefault(m.group(1), path.name)
    return found


Warn = Callable[[str], None]  # told each table warning (e.g. intervals dropped for a truncated per_sample.jsonl)


def render_leaderboard(runs_dir: str | Path, *, resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                       progress: Progress | None = None, reports: Mapping[str, str] | None = None,
                       warn: Warn | None = None, cost: bool = False) -> dict[str, str]:
    """The leaderboard files as {relative path: text}: README.md, <dataset>.csv, index.html. Pure function of
    the run directories (and of `reports`, spec hash -> report page, which the rows link to); `cost` adds what
    each run cost (its ``cost.json``: machine-dependent, so the committed leaderboard has no such columns)."""
    tables = leaderboard_tables(runs_dir, resamples=resamples, seed=seed, progress=progress, reports=reports,
                                cost=cost)
    if warn is not None:
        for (dataset, split), ts in tables.items():
            for w in (w for t in ts for w in t.warnings):
                warn(f"{dataset} ({split}): {w}")
    return leaderboard_files(tables)


def leaderboard_files(tables: Mapping[tuple[str, str], Sequence[Table]]) -> dict[str, str]:
    """The leaderboard files of `leaderboard_tables`' tables as {relative path: text}."""
    files = {"README.md": leaderboard_markdown(tables), "index.html": leaderboard_html(tables)}
    for dataset in sorted({d for d, _ in tables}):
        csv_name = f"{path_component(dataset)}.csv"  # pairs:PATH is a path: one file name
        files[csv_name] = tables_csv([t for (d, _), ts in tables.items() if d == dataset for t in ts])
    return files


def build_leaderboard(runs_dir: str | Path = "runs", out_dir: str | Path = "leaderboard", *,
                      resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                      progress: Progress | None = None, warn: Warn | None = None, cost: bool = False) -> list[Path]:
    """Write the leaderboard files under `out_dir` (only files whose content changed are rewritten); returns
    their paths. Stale ``<dataset>.csv`` files of datasets without runs are removed. Rows link to the run reports
    found under `out_dir` (`find_reports`)."""
    out_dir = Path(out_dir)
    files = render_leaderboard(runs_dir, resamples=resamples, seed=seed, progress=progress,
                               reports=find_reports(out_dir), warn=warn, cost=cost)
    return write_leaderboard(files, out_dir)


def write_leaderboard(files: Mapping[str, str], out_dir: str | Path) -> list[Path]:
    """Write `files` ({relative path: text}) under `out_dir`, only those whose content changed, and remove stale
    ``<dataset>.csv`` files; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists() or path.read_bytes() != text.encode("utf-8"):
            write_atomic(path, text.encode("utf-8"))
        paths.append(path)
    for stale in _stale_files(out_dir, files):
        stale.unlink()
    return paths


def _stale_files(out_dir: Path, files: Mapping[str, str]) -> list[Path]:
    return sorted(p for p in out_dir.glob("*.csv") if p.name not in files)


def check_leaderboard(runs_dir: str | Path = "runs", out_dir: str | Path = "leaderboard", *,
                      resamples: int = bs.DEFAULT_RESAMPLES, seed: int = bs.DEFAULT_SEED,
                      progress: Progress | None = None, warn: Warn | None = None, cost: bool = False) -> list[str]:
    """Differences between the files under `out_dir` and what the runs (and the reports there) give ([] = up to
    date)."""
    out_dir = Path(out_dir)
    files = render_leaderboard(runs_dir, resamples=resamples, seed=seed, progress=progress,
                               reports=find_reports(out_dir), warn=warn, cost=cost)
    diffs = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists():
            diffs.append(f"{path}: missing")
        elif path.read_bytes() != text.encode("utf-8"):
            diffs.append(f"{path}: differs from what the runs give")
    diffs += [f"{p}: no runs of this dataset (stale)" for p in _stale_files(out_dir, files)]
    return diffs


def runs_dir_candidates(out_dir: str | Path, *, check: bool) -> list[Path]:
    """Where `idcbench leaderboard` looks for runs without --runs-dir, in order. ``--check`` asks whether the files
    under `out_dir` are what their runs give, so it looks first beside them, at the light runs `idcbench demo` (and the
    repository) keep in ``<out>/runs``; writing builds from ``runs``, where `idcbench run` puts run directories.

    >>> [str(p) for p in runs_dir_candidates("leaderboard", check=True)]
    ['leaderboard/runs', 'runs']
    >>> [str(p) for p in runs_dir_candidates("board", check=False)]
    ['runs', 'board/runs']
    """
    beside, default = Path(out_dir) / "runs", Path("runs")
    return [beside, default] if check else [default, beside]


def default_runs_dir(out_dir: str | Path, *, check: bool) -> Path:
    """The first of `runs_dir_candidates` that is a folder; none: a `UserError` saying what to pass."""
    candidates = runs_dir_candidates(out_dir, check=check)
    for path in candidates:
        if path.is_dir():
            return path
    raise UserError(f"no runs to build the leaderboard from: neither {candidates[0]} nor {candidates[1]} is a folder; "
                    "pass --runs-dir DIR (the --runs-dir of `idcbench run`)")
