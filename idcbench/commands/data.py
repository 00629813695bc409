"""`idcbench data synth | info | verify`: make the synthetic dataset, describe a dataset, check its images."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from idcbench.cli import app, console, err_console
from idcbench.errors import UserError

data_app = typer.Typer(help="Datasets: synthesize `shapes`, describe a dataset, verify its images.", no_args_is_help=True)
app.add_typer(data_app, name="data")

MAX_LISTED_PROBLEMS = 10


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console)


@data_app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write (CLEVR-Change layout); must not exist or be empty."),
    scenes: int = typer.Option(None, "--scenes", help="Number of scene ids, each giving a semantic and a distractor pair (default: see `idcbench data info shapes`)."),
    size: int = typer.Option(None, "--size", help="Image side in pixels (default 64)."),
    seed: int = typer.Option(None, "--seed", help="Random seed: same arguments, same bytes (default 0)."),
    splits: str = typer.Option(None, "--splits", help="train,val,test fractions (default 0.8,0.1,0.1)."),
    workers: int = typer.Option(0, "--workers", help="Processes rendering in parallel, 0 = up to 4 (same output)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Generate the synthetic `shapes` dataset in the exact CLEVR-Change layout (readable as --dataset clevr-change)."""
    from idcbench.datasets import shapes

    scenes = shapes.DEFAULT_SCENES if scenes is None else scenes
    size = shapes.DEFAULT_SIZE if size is None else size
    seed = shapes.DEFAULT_SEED if seed is None else seed
    fractions = shapes.DEFAULT_SPLITS if splits is None else shapes.parse_splits(splits)
    shapes.check_synth_args(out, scenes=scenes, size=size, splits=fractions, overwrite=overwrite)
    workers = workers if workers > 0 else min(4, os.cpu_count() or 1)
    with _progress() as progress:
        task = progress.add_task("rendering scenes", total=scenes)
        root = shapes.synthesize(out, scenes=scenes, size=size, seed=seed, splits=fractions, overwrite=overwrite,
                                 workers=workers, on_progress=lambda done, total: progress.update(task, completed=done))
    split_sizes = json.loads((root / "splits.json").read_text())
    counts = ", ".join(f"{name} {len(ids)}" for name, ids in split_sizes.items())
    console.print(f"wrote {scenes} scenes ({2 * scenes} pairs; {counts} scene ids) at {size} px to {escape(str(root))}")
    console.print(f"use it with [bold]--dataset clevr-change --data-root {escape(str(root))}[/] "
                  f"(or --dataset shapes --data-root {escape(str(root))})")


def _open(name: str, data_root: Optional[Path]):
    from idcbench.data import data_root as resolve
    from idcbench.registry import DATASETS

    loader = DATASETS.get(name)
    root = resolve(name, data_root)
    opener = getattr(loader, "open", loader.load)
    return loader, root, opener


@data_app.command("info")
def info(
    name: str = typer.Argument(..., help="Dataset name (`idcbench list datasets`)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder (default $IDCBENCH_DATA/<name>)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Describe a dataset (citation, where to get it, layout, protocol) and, when its annotations are present, count
    examples, references and subsets per split. Never reads an image, never generates data."""
    from idcbench.datasets.describe import describe, summarize

    loader, root, opener = _open(name, data_root)
    from idcbench.protocol import protocols_of

    result = {**describe(loader.info), "root": str(root), "splits": None,
              "protocols": {p.name: p.description for p in protocols_of(name).values()}}
    try:
        dataset = opener(root)
    except UserError as e:  # missing root or annotation files: still describe the dataset
        result["missing"] = str(e)
    else:
        result["splits"] = summarize(dataset)  # malformed annotations raise: exit 2
    if as_json:
        print(json.dumps(result, indent=2))
        return
    console.print(f"[bold]{escape(result['title'])}[/] ({name})")
    console.print(f"[bold]citation[/]  {escape(result['citation'])}")
    console.print(f"[bold]source[/]    {escape(result['source'])}")
    console.print(f"[bold]protocol[/]  {escape(result['protocol'])}")
    for k, (pname, text) in enumerate(result["protocols"].items()):  # how it can be scored: --protocol NAME
        console.print(f"[bold]--protocol {escape(pname)}[/]{' (default)' if k == 0 else ''}: {escape(text)}",
                      highlight=False)
    console.print("[bold]layout[/] (under the data root)")
    console.print(escape(result["layout"]), highlight=False, soft_wrap=True)
    console.print(f"[bold]data root[/] {escape(str(root))}")
    if result["splits"] is None:
        console.print(f"[yellow]annotations not present:[/] {escape(result['missing'])}")
        return
    table = Table(title=f"{name} splits")
    for column in ("split", "examples", "references", "empty refs", "subsets (size)"):
        table.add_column(column, justify="left" if column in ("split", "subsets (size)") else "right")
    for split, s in result["splits"].items():
        subsets = ", ".join(f"{k} {v:,}" for k, v in s["subsets"].items())
        table.add_row(split, f"{s['examples']:,}", f"{s['references']:,}", f"{s['empty_references']:,}", subsets)
    console.print(table)


@data_app.command("verify")
def verify(
    name: str = typer.Argument(..., help="Dataset name (`idcbench list datasets`)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder (default $IDCBENCH_DATA/<name>)."),
    split: Optional[str] = typer.Option(None, "--split", help="Check one split only (default: all)."),
    workers: int = typer.Option(4, "--workers", help="Threads decoding images."),
) -> None:
    """Check that every image the annotations reference exists and decodes; exit 2 listing the first problems."""
    from idcbench.datasets import describe as reports

    loader, root, opener = _open(name, data_root)
    dataset = opener(root)
    if split is not None:
        dataset.check_split(split)
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def on_split(s: str, n: int) -> None:
            tasks["current"] = progress.add_task(f"{s}: images", total=n)

        result = reports.verify(dataset, [split] if split else None, workers=workers, on_split=on_split,
                                on_image=lambda: progress.advance(tasks["current"]))
    table = Table(title=f"{name} images ({escape(str(root))})")
    for column in ("split", "examples", "images", "missing", "corrupt"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for s, check in result.splits.items():
        table.add_row(s, f"{check.examples:,}", f"{check.images:,}", _bad(check.missing), _bad(check.corrupt))
    console.print(table)
    if result.ok:
        console.print("[green]all images present and decodable[/]")
        return
    for problem in result.problems[:MAX_LISTED_PROBLEMS]:
        err_console.print(escape(str(problem)), highlight=False, soft_wrap=True)
    more = len(result.problems) - MAX_LISTED_PROBLEMS
    raise UserError(f"{len(result.problems)} image(s) missing or corrupt under {root}"
                    + (f" (first {MAX_LISTED_PROBLEMS} listed above, {more} more)" if more > 0 else " (listed above)")
                    + f"; see `idcbench data info {name}` for the expected layout")


def _bad(n: int) -> str:
    return f"[red]{n:,}[/]" if n else "0"
