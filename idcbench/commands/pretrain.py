"""`idcbench pretrain-clip`: pretrain the miniature CLIP (`idc-tiny-vit`) on `shapes` scenes and their descriptions."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from idcbench.cli import app, console
from idcbench.cli_help import DEVICE_HELP
from idcbench.errors import UserError


@app.command("pretrain-clip")
def pretrain_clip(
    out: Path = typer.Option(..., "--out", help="Directory for the weights (.safetensors) and their JSON record."),
    dataset: str = typer.Option("shapes", "--dataset", help="Pretraining data; only the `shapes` generator for now."),
    steps: int = typer.Option(800, "--steps", min=1, help="Optimizer steps (800 take about 13 minutes on 2 CPU threads)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the init and of the generated batches."),
    batch_size: int = typer.Option(128, "--batch-size", min=2, help="Image-text pairs per step."),
    lr: float = typer.Option(3e-4, "--lr", min=0.0, help="Peak learning rate (AdamW, warmup then cosine)."),
    twins: float = typer.Option(0.5, "--twins", min=0.0, max=1.0,
                                help="Fraction of each batch in twin scenes that differ in one attribute of one object."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP + " Weights are bit-identical only on the same device."),
    threads: int = typer.Option(2, "--threads", min=1, help="torch CPU threads (part of what makes a run bit-exact)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes rendering batches (1: one background thread)."),
) -> None:
    """Contrastive image-text pretraining of the tiny CLIP; writes fp16 weights loadable as `--pretrained tiny`.

    To rebuild the weights shipped with idcbench: `idcbench pretrain-clip --dataset shapes --out models/tinyclip/weights`.
    """
    if dataset != "shapes":
        raise UserError(f"pretrain-clip: unknown dataset {dataset!r}; only 'shapes' (generated on the fly) is supported")
    from idcbench.run.request import resolve_device

    device = resolve_device(device)  # the record names the device used (auto -> cuda or cpu)
    from idcbench.models.tinyclip.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, twins=twins,
                         warmup_steps=max(1, min(40, steps // 20)))
    command = shlex.join(["idcbench", "pretrain-clip", "--dataset", dataset, "--out", str(out), "--steps", str(steps),
                          "--seed", str(seed), "--batch-size", str(batch_size), "--lr", str(lr), "--device", device,
                          "--threads", str(threads), "--workers", str(workers), "--twins", str(twins)])
    columns = (TextColumn("[bold]pretraining idc-tiny-vit"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.3f}  lr {task.fields[lr]:.2e}  {task.fields[speed]:.2f} steps/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("train", total=steps, loss=float("nan"), lr=0.0, speed=0.0)

        def on_progress(step: int, total: int, logs: dict[str, float]) -> None:
            progress.update(task, completed=step, loss=logs["loss"], lr=logs["lr"], speed=logs["steps_per_s"])

        record = pretrain(cfg, out, on_progress=on_progress, on_stage=lambda msg: progress.console.print(msg),
                          command=command, device=device, threads=threads, workers=workers)
    _print_record(record, out)


def _print_record(record: dict, out: Path) -> None:
    from idcbench.models.tinyclip import RECORD_FILE

    table = Table(title="what the tiny CLIP learned (held-out shapes)")
    table.add_column("check", style="bold")
    table.add_column("pretrained", justify="right")
    table.add_column("random init", justify="right")
    table.add_column("chance", justify="right")
    pre, rnd = record["eval"]["pretrained"], record["eval"]["random_init"]
    for style in ("ensemble", "simple"):
        for attribute, value in pre["zero_shot"][style].items():
            table.add_row(f"zero-shot {attribute} ({style} prompts)", f"{100 * value:.1f}",
                          f"{100 * rnd['zero_shot'][style][attribute]:.1f}", f"{100 * pre['chance']['zero_shot'][attribute]:.1f}")
    for direction, value in pre["retrieval_r1"].items():
        table.add_row(f"R@1 {direction.replace('_', ' ')} ({pre['settings']['scenes']} scenes)", f"{100 * value:.1f}",
                      f"{100 * rnd['retrieval_r1'][direction]:.1f}", f"{100 * pre['chance']['retrieval_r1']:.1f}")
    console.print(table)
    console.print(f"wrote {out / record['file']} ({record['bytes'] / 1e6:.2f} MB, {record['stored_token_rows']} token rows) "
                  f"in {record['run']['train_seconds']:.0f} s of training; record: {out / RECORD_FILE}")
