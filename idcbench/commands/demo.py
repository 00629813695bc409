"""`idcbench demo`: the embedded end-to-end demo on the synthetic `shapes` dataset (what `make demo` runs)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from idcbench.cli import app, console
from idcbench.cli_help import DEVICE_HELP


@app.command()
def demo(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the run directories go."),
    out: Path = typer.Option(Path("leaderboard"), "--out", help="Where the leaderboard, its light runs and the report go."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP + " Used by --train; the shipped checkpoints are "
                               "always evaluated on cpu, so that the leaderboard is the same on every machine."),
    force: bool = typer.Option(False, "--force", help="Recompute runs that are already DONE."),
    train: bool = typer.Option(False, "--train", help="First train every learned demo model from scratch with its "
                               "recipe and ship it into models/shipped/ (compact weights, spec, environment, "
                               "validation curves, cost, sha256), then evaluate as usual."),
) -> None:
    """Evaluate CLIP4IDC-tiny, its ablations and the baselines on `shapes` from the shipped checkpoints (the dataset is
    generated on first use); write the leaderboard and CLIP4IDC-tiny's report."""
    from idcbench.commands.run import RichReporter
    from idcbench.demo import run_demo

    start = time.perf_counter()
    with RichReporter() as reporter:
        result = run_demo(runs_dir, out, device=device, force=force, train=train, reporter=reporter)
    from idcbench.commands._grid import print_grid, table_grid

    for tables in result.tables.values():  # never cut: folded on a narrow terminal, Markdown through a pipe
        for t in tables:
            print_grid(console, table_grid(t))
    console.print(f"[bold green]demo done[/] in {time.perf_counter() - start:.0f} s: leaderboard {out}/README.md, "
                  f"{out}/index.html" + (f", report {result.report}" if result.report else ""))
