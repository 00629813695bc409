"""`idcbench eval PREDICTIONS`: score a predictions file against a dataset split or a COCO ground-truth file.

Prints one table per evaluation (rows: subsets, columns: metrics, values x100) and optionally writes the
``metrics.json`` content to ``--json`` (``-`` for stdout). Nothing is written when anything fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from idcbench.cli import app, console, err_console
from idcbench.commands._grid import metrics_grid, print_grid
from idcbench.errors import UserError

if TYPE_CHECKING:
    from idcbench.protocol import Protocol


def load_references(dataset: str | None, data_root: Path | None, split: str, references: Path | None,
                    protocol: "Protocol | None" = None):
    """(references, subsets, tags, id key, tokenizer) from a registered dataset split (scored by `protocol`) or a
    COCO caption file; the id key says which ids of other code's files mean the same pair (`idcbench.ids`), the
    tokenizer how the protocol tokenizes captions (None: PTB)."""
    if (dataset is None) == (references is None):
        raise UserError("give exactly one of --dataset NAME or --references GT.json")
    if references is not None:
        from idcbench.ids import file_id_key
        from idcbench.predictions import read_references

        return read_references(references), None, None, file_id_key, None
    from idcbench.data import load_dataset
    from idcbench.protocol import protocol_of

    protocol = protocol or protocol_of(dataset)

    ds = load_dataset(dataset, data_root)
    ds.check_split(split)
    examples = ds.examples(split)
    refs = {e.id: list(e.references) for e in examples}
    tags = {e.id: {k: str(v) for k, v in dict(e.tags).items()} for e in examples}
    return refs, protocol.subsets(ds, split), tags, ds.id_key, protocol.tokenizer(ds)


@app.command("eval")
def eval_(
    predictions: Path = typer.Argument(..., help="Predictions: COCO results list, JSONL {id, caption}, CSV with "
                                       "columns id, caption, or RCC sc_results.json"),
    distractors: Optional[Path] = typer.Argument(None, help="RCC nsc_results.json (its ids get the suffix _n)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Registered dataset (see `idcbench list datasets`)"),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder (default: $IDCBENCH_DATA/<name>)"),
    split: str = typer.Option("test", "--split", help="Dataset split"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="How the dataset is scored (default: its standard "
                                           "protocol; `idcbench data info NAME` lists them)"),
    references: Optional[Path] = typer.Option(None, "--references", "-r", help="COCO caption ground truth (annotations list)"),
    metrics: Optional[List[str]] = typer.Option(
        None, "--metrics", "-m", metavar="<names>",
        help="Metrics, repeated or comma-separated (default: BLEU-1..4, METEOR, ROUGE-L, CIDEr-D). "
        "Opt-in: SPICE (needs CoreNLP 3.6.0 jars), BERTScore (about 50 s per 5,000 captions on CPU)."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Score only the ids that have a prediction"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the scores (metrics.json format) here; - for stdout"),
) -> None:
    """Score predictions exactly as pycocoevalcap 1.2 does, per subset, much faster."""
    from idcbench.ids import align_ids
    from idcbench.predictions import read_predictions
    from idcbench.scoring import metrics_json, resolve_metrics, score

    from idcbench.protocol import protocol_of

    chosen = protocol_of(dataset, protocol)  # an unknown protocol: one line, before anything is read
    names = resolve_metrics(metrics if metrics else chosen.default_metrics())
    if json_out is not None and str(json_out) != "-":
        from idcbench.files import check_output

        check_output(json_out, "--json")  # before the scoring run, so its scores are never lost
    refs, subsets, tags, id_key, tokenize = load_references(dataset, data_root, split, references, chosen)
    preds = align_ids(read_predictions(predictions, distractors), refs, id_key)  # "256.png" is Spot-the-Diff's 256
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = score(preds, refs, subsets, names, allow_partial=allow_partial, progress=progress, tags=tags,
                       tokenize=tokenize)
    what = (f"{dataset} {split}" + (f" ({chosen.name} protocol)" if chosen.name != protocol_of(dataset).name else "")
            if dataset else str(references))
    out = err_console if json_out is not None and str(json_out) == "-" else console
    scores = metrics_json(report)
    print_grid(out, metrics_grid(scores, f"{predictions.name} on {what} (x100)"))
    for m, why in report.unavailable.items():
        err_console.print(f"[yellow]{m} not available:[/] {why}", highlight=False)
    cov = report.coverage
    if cov["missing"]:
        err_console.print(f"[yellow]partial:[/] scored {cov['predicted']} of {cov['references']} ids "
                          f"({100 * cov['fraction']:.1f} %)", highlight=False)
    if json_out is not None:
        text = json.dumps(scores, indent=2, ensure_ascii=False) + "\n"
        if str(json_out) == "-":
            typer.echo(text, nl=False)
        else:
            from idcbench.files import write_atomic

            write_atomic(json_out, text)
