"""`idcbench run MODEL --dataset NAME` and `idcbench score RUN_DIR`: thin wrappers over `idcbench.run`.

Only rank 0 prints (progress bars and tables); other ranks of a torchrun job stay quiet.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Mapping, Optional

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from idcbench.cli import app, console
from idcbench.cli_help import DEVICE_HELP
from idcbench.commands._grid import metrics_grid, print_grid, retrieval_line
from idcbench.plugins import INCLUDE_HELP


class RichReporter:
    """Rich progress bars: training (stage, loss, lr, steps/s), captioning (pairs/s), retrieval and scoring.

    A bar's count is its own (pairs captioned of the split); a task reported in stages (scoring: tokenizing, BLEU,
    CIDEr-D over its subsets, METEOR over its segments) shows each stage's count beside the stage's name, so that
    "CIDEr-D 2/2" is never read as the whole scoring's "2/2".
    """

    def __init__(self) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, tuple[float, int]] = {}
        self.staged: set[str] = set()  # tasks whose counts are their stages' (see `update`)

    def __enter__(self) -> "RichReporter":
        return self  # the live display starts with the first bar: a reused run or an early error prints none

    def __exit__(self, *exc: Any) -> None:
        if self.tasks:
            self.progress.stop()

    def message(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _rate(self, task: str, completed: int) -> float:
        t0, c0 = self.started[task]
        dt = time.perf_counter() - t0
        return (completed - c0) / dt if dt > 0 else 0.0

    def train(self, stage: str, step: int, total: int, logs: Mapping[str, float]) -> None:
        key = f"train {stage}"
        if key not in self.tasks:
            self.begin(key, total, step)
        info = "  ".join(f"{k} {v:.4g}" for k, v in logs.items())
        info = f"{info}  {self._rate(key, step):.2f} steps/s"
        self.progress.update(self.tasks[key], completed=step, total=total, info=info, count=f"{step}/{total}")

    def begin(self, task: str, total: int, completed: int = 0) -> None:
        if not self.tasks:
            self.progress.start()
        self.tasks[task] = self.progress.add_task(task, total=total, completed=completed, info="",
                                                  count=f"{completed}/{total}")
        self.started[task] = (time.perf_counter(), completed)

    def advance(self, task: str, n: int = 1) -> None:
        tid = self.tasks[task]
        self.progress.advance(tid, n)
        t = next(t for t in self.progress.tasks if t.id == tid)
        done = int(t.completed)
        self.progress.update(tid, count=f"{done}/{int(t.total or 0)}")
        if task.startswith("caption") or task == "retrieval":
            unit = "pairs/s" if task.startswith("caption") else "items/s"
            self.progress.update(tid, info=f"{self._rate(task, done):.1f} {unit}")

    def update(self, task: str, completed: int, total: int, info: str = "") -> None:
        """`info` names the stage that `completed` / `total` count (a scoring stage), or is empty (the task's own)."""
        if task in self.tasks:
            if info:
                self.staged.add(task)
            count = f"{info} {completed}/{total}" if info else f"{completed}/{total}"
            self.progress.update(self.tasks[task], completed=completed, total=max(total, 1), info="", count=count)

    def end(self, task: str) -> None:
        tid = self.tasks.get(task)
        if tid is not None:
            t = next(t for t in self.progress.tasks if t.id == tid)
            count = "done" if task in self.staged else f"{int(t.total or 0)}/{int(t.total or 0)}"
            self.progress.update(tid, completed=t.total, count=count)


def _split_list(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def print_metrics(metrics: Mapping[str, Any], title: str) -> None:
    """One row per subset, one column per metric (values x100, as reported in papers)."""
    print_grid(console, metrics_grid(metrics, title))
    retrieval = metrics.get("retrieval")
    if retrieval:
        console.print("retrieval: " + retrieval_line(retrieval), markup=False, highlight=False, soft_wrap=True)
    for m, why in (metrics.get("unavailable") or {}).items():
        console.print(f"[yellow]{m} not available:[/] {why}", highlight=False)
    failed = (metrics.get("run") or {}).get("failed")
    if failed:
        from rich.markup import escape

        from idcbench.cli import err_console

        ids = ", ".join(failed["ids"][:5]) + (", …" if failed["n"] > 5 else "")
        why = next(iter(failed.get("reasons") or {}), "no caption")
        err_console.print(f"[bold red]{failed['n']} of {(metrics.get('run') or {}).get('n')} pairs have no caption"
                          f"[/] ({escape(ids)}): {escape(why)}. They are scored as empty captions; rerun the same "
                          "command to ask them again.", highlight=False, soft_wrap=True)


def _terminate_cleanly() -> None:
    """SIGTERM (a scheduler's time limit, torchrun stopping the other ranks) ends with one line and exit code 2.
    Saved work stays valid: whole files are atomic, and a torn predictions line is dropped on resume."""
    import signal
    import threading

    from idcbench.errors import UserError

    def handler(signum: int, frame: Any) -> None:
        raise UserError("terminated (SIGTERM); the run directory keeps every finished batch: rerun the same command "
                        "to resume")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@app.command("run")
def run_command(
    model: str = typer.Argument(..., help="Registered model name (`idcbench list models`)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Registered dataset name."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder (default $IDCBENCH_DATA/<name>)."),
    split: str = typer.Option("test", "--split", help="Split to caption and score."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="How the dataset is scored (default: its "
                                           "standard protocol; `idcbench data info NAME` lists them)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Checkpoint (file or saved model folder) to evaluate as it is; with --train, to start training from."),
    train: bool = typer.Option(False, "--train", help="With --init: fine-tune, i.e. train with the model's recipe on the train split (selecting on val) starting from that checkpoint. Without --init a model that learns always trains; one that does not learn refuses --train."),
    config: List[str] = typer.Option([], "--config", "-c", metavar="<key=value>", help="Model config override KEY=VALUE (JSON value; dotted keys set groups, e.g. stage2.epochs=1); repeatable."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialisation and of training; each seed is its own run directory."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_size: int = typer.Option(32, "--batch-size", help="Captioning batch size (does not change results)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N examples of the split."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories live."),
    force: bool = typer.Option(False, "--force", help="Redo the run even if DONE exists."),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", "-m", metavar="<names>",
                                                help="Metric names (comma-separated or repeated); default all."),
    shard: Optional[int] = typer.Option(None, "--shard", help="Caption only shard I (then `idcbench score RUN_DIR`)."),
    num_shards: Optional[int] = typer.Option(None, "--num-shards", help="Number of shards for --shard."),
    include: List[Path] = typer.Option([], "--include", help=INCLUDE_HELP),
) -> None:
    """Train or load MODEL, caption DATASET's split, score every metric on every subset, into a resumable run directory.

    The directory is runs/<dataset>/<model>/<spec hash>; a finished run is reused, a killed one resumes when the same
    command is given again. Several processes: `torchrun --nproc_per_node N -m idcbench run ...`. Separate jobs:
    `--shard I --num-shards N` each, then `idcbench score RUN_DIR`.
    """
    from idcbench.distributed import dist_info
    from idcbench.run import Reporter, RunRequest, parse_config, run

    from idcbench.errors import EXIT_USER_ERROR, UserError
    from idcbench.plugins import include as include_paths

    include_paths(include)
    req = RunRequest(model=model, dataset=dataset, data_root=data_root, split=split, protocol=protocol, init=init, train=train,
                     config=parse_config(config), seed=seed, device=device, batch_size=batch_size, limit=limit,
                     runs_dir=runs_dir, force=force, metrics=_split_list(metrics), shard=shard, num_shards=num_shards)
    _terminate_cleanly()
    if not dist_info().is_main:
        try:
            run(req, Reporter())
        except UserError:
            raise SystemExit(EXIT_USER_ERROR)  # rank 0 prints the line; the same error on every rank would repeat it
        return
    with RichReporter() as reporter:
        result = run(req, reporter)
    if result.status == "shard":
        console.print(f"shard {shard} of {num_shards} captioned into {result.run_dir}; when every shard is done: "
                      f"idcbench score {result.run_dir}", highlight=False, soft_wrap=True)
        return
    if result.status == "reused":
        console.print(f"reused {result.run_dir} (DONE; --force to redo)", highlight=False, soft_wrap=True)
    if result.metrics:
        print_metrics(result.metrics, f"{model} on {dataset} {split}  [{result.run_dir}]")


@app.command("score")
def score_command(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<dataset>/<model>/<hash>)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset folder if it moved since the run."),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", "-m", metavar="<names>",
                                                help="Metric names (comma-separated or repeated); default all."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    include: List[Path] = typer.Option([], "--include", help=INCLUDE_HELP),
) -> None:
    """Merge the shard predictions of RUN_DIR and score them (every shard must be done)."""
    from idcbench.plugins import include as include_paths
    from idcbench.run import score_run

    include_paths(include)

    with RichReporter() as reporter:
        result = score_run(run_dir, data_root=data_root, metrics=_split_list(metrics), device=device, reporter=reporter)
    print_metrics(result.metrics or {}, f"{result.spec.model} on {result.spec.dataset} {result.spec.split}  [{run_dir}]")
