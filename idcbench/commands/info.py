"""`idcbench list` and `idcbench doctor`: what is registered, and whether this machine can score and train."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from idcbench.cli import app, console, err_console
from idcbench.plugins import INCLUDE_HELP
from idcbench.registry import DATASETS, METRICS, MODELS

_REGISTRIES = {"models": MODELS, "datasets": DATASETS, "metrics": METRICS}


@app.command("list")
def list_(
    what: str = typer.Argument("models", help="models, datasets or metrics"),
    pattern: str = typer.Option("*", "--pattern", "-p", help="fnmatch pattern on names"),
    include: List[Path] = typer.Option([], "--include", help=INCLUDE_HELP),
) -> None:
    """List registered models, datasets or metrics: a table on a terminal, one plain line each through a pipe."""
    from idcbench.errors import UserError
    from idcbench.plugins import include as include_paths

    include_paths(include)

    if what not in _REGISTRIES:
        raise UserError(f"cannot list {what!r}: choose models, datasets or metrics")
    entries = _REGISTRIES[what].entries(pattern)
    if not console.is_terminal:  # a pipe (grep, cut) or a file: one plain line per name
        width = max((len(e.name) for e in entries), default=0)
        for entry in entries:
            console.print(f"{entry.name:<{width}}  {entry.description}".rstrip(), markup=False, highlight=False,
                          soft_wrap=True)
        return
    table = Table(title=f"idcbench {what}", show_lines=False)
    table.add_column("name", style="bold")
    table.add_column("description")
    for entry in entries:
        table.add_row(entry.name, entry.description)
    console.print(table)


@app.command()
def doctor() -> None:
    """Check Java, the scorer's jars, SPICE, BERTScore, torch and the accelerator; say what to do for each gap."""
    from idcbench.doctor import checks

    with Progress(SpinnerColumn(), TextColumn("checking {task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:  # some checks take seconds (torch, BERTScore)
        task = bar.add_task("", total=None)
        found = checks(lambda name, done, total: bar.update(
            task, description=f"[bold]{escape(name)}[/] ({done + 1} of {total})", refresh=True))
    table = Table(title="idcbench doctor")
    table.add_column("check", style="bold")
    table.add_column("status")
    table.add_column("details / what to do")
    for check in found:
        status = "[green]ok[/]" if check.ok else ("[yellow]optional[/]" if check.optional else "[red]missing[/]")
        table.add_row(check.name, status, check.detail)
    console.print(table)
