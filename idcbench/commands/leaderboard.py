"""`idcbench compare`, `idcbench leaderboard` and `idcbench report`: thin wrappers over `idcbench.tables`
and `idcbench.report`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from idcbench.cli import app, console, err_console
from idcbench.commands._grid import print_grid, table_grid
from idcbench.errors import UserError

FORMATS = ("table", "md", "csv", "json")


@contextmanager
def _progress(what: str) -> Iterator:
    """A rich progress bar on stderr; yields a ``(description, done, total)`` callback."""
    with Progress(SpinnerColumn(), TextColumn(f"[bold]{escape(what)}[/] {{task.description}}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def update(desc: str, done: int, total: int) -> None:
            bar.update(task, description=escape(desc), completed=done, total=total)

        yield update


def _warn(text: str) -> None:
    """One line on stderr, e.g. why a run's rows have no intervals."""
    err_console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


@app.command()
def compare(
    run_dirs: Optional[List[Path]] = typer.Argument(None, help="Run directories (runs/<dataset>/<model>/<hash>)."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", show_default=False,
                                            help="Compare every finished run under this folder [default: runs, "
                                                 "without run directories]."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Only runs of this dataset."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Model (or row label) for the paired test on CIDEr-D."),
    subset: str = typer.Option("total", "--subset", help="Subset to compare (total, semantic, color, ...)."),
    fmt: Optional[str] = typer.Option(None, "--format", metavar="<format>",
                                      help="table, md, csv or json [default: table on a terminal, else md]."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples (0: no intervals)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    cost: bool = typer.Option(False, "--cost", help="Add what each run cost (its cost.json: training, captioning "
                              "and scoring seconds, training steps, device; mean over seeds)."),
) -> None:
    """Compare runs: one row per model configuration (mean ± std over seeds) with 95 % bootstrap intervals and a
    paired bootstrap p-value against --baseline on CIDEr-D."""
    from idcbench.tables import csv, json, markdown
    from idcbench.tables.build import compare as compare_runs
    from idcbench.tables.runs import discover_runs, load_runs

    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if run_dirs and runs_dir is not None:
        raise UserError("pass run directories or --runs-dir, not both")
    if not run_dirs and runs_dir is None:  # like `idcbench leaderboard`: where `idcbench run` puts its runs
        runs_dir = Path("runs")
        if not runs_dir.is_dir():
            raise UserError("no runs to compare: ./runs is not a folder; pass run directories or --runs-dir DIR "
                            "(the --runs-dir of `idcbench run`)")
        err_console.print(f"runs: {escape(str(runs_dir))} (--runs-dir to choose)", highlight=False, soft_wrap=True)
    runs = load_runs(run_dirs) if run_dirs else discover_runs(runs_dir)
    if dataset is not None:
        runs = [r for r in runs if r.dataset == dataset]
        if not runs:
            raise UserError(f"no runs of dataset {dataset!r} among the given runs")
    with _progress("compare") as update:
        tables = compare_runs(runs, subset=subset, baseline=baseline, resamples=resamples, seed=seed, progress=update,
                              cost=cost)
    for t in tables:
        for w in t.warnings:
            _warn(f"{t.title}: {w}")
    if fmt is None:
        fmt = "table" if console.is_terminal else "md"
    if fmt == "md":
        print(markdown.compare_markdown(tables), end="")
    elif fmt == "csv":
        print(csv.tables_csv(tables), end="")
    elif fmt == "json":
        print(json.tables_json(tables), end="")
    else:
        for t in tables:
            print_grid(console, table_grid(t), "table")


@app.command()
def leaderboard(
    runs_dir: Optional[Path] = typer.Option(
        None, "--runs-dir", show_default=False,
        help="Folder of run directories [default: with --check, <out>/runs (the light runs `idcbench demo` keeps "
             "beside the tables, what the committed leaderboard/ is built from) when it exists, else runs; without "
             "--check, runs when it exists, else <out>/runs]."),
    out: Path = typer.Option(Path("leaderboard"), "--out", help="Where README.md, <dataset>.csv and index.html go."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if the files under --out are stale."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples (0: no intervals)."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    cost: bool = typer.Option(False, "--cost", help="Add what each run cost to the main tables (its cost.json; "
                              "it depends on the machine, and light run copies have none)."),
) -> None:
    """Write (or --check) the leaderboard: one table per dataset with bootstrap intervals, per change type tables,
    published rows beside measured ones. A pure function of the run directories."""
    from idcbench.files import check_output
    from idcbench.tables.publish import build_leaderboard, check_leaderboard, default_runs_dir

    if not check:
        check_output(out, "--out", directory=True)
    if runs_dir is None:
        runs_dir = default_runs_dir(out, check=check)
        err_console.print(f"runs: {escape(str(runs_dir))} (--runs-dir to choose)", highlight=False, soft_wrap=True)
    with _progress("leaderboard") as update:
        if check:
            diffs = check_leaderboard(runs_dir, out, resamples=resamples, seed=seed, progress=update, warn=_warn,
                                      cost=cost)
        else:
            paths = build_leaderboard(runs_dir, out, resamples=resamples, seed=seed, progress=update, warn=_warn,
                                      cost=cost)
    if check:
        if diffs:
            more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
            err_console.print(f"[bold red]leaderboard out of date:[/] {escape(diffs[0])}{more}; "
                              f"run `idcbench leaderboard --runs-dir {runs_dir} --out {out}`",
                              highlight=False, soft_wrap=True)
            raise SystemExit(1)
        console.print(f"leaderboard up to date: {out}")
        return
    for p in paths:
        console.print(f"wrote {escape(str(p))}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    examples: int = typer.Option(120, "--examples", min=1, help="About how many examples to show."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder, if not where the run found it."),
) -> None:
    """One self-contained HTML page for a run: spec, metrics per subset, and examples with thumbnails (worst and
    best first, filterable by change type)."""
    from idcbench.files import check_output
    from idcbench.report import build_report

    check_output(out, "--out")
    with err_console.status("writing report"):
        path = build_report(run_dir, out, max_examples=examples, data_root=data_root)
    console.print(f"wrote {escape(str(path))}")
