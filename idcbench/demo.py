"""The embedded demo: `shapes` -> CLIP4IDC-tiny, its ablations and the baselines -> leaderboard + report.

`make demo` (`run_demo`) evaluates the checkpoints shipped in ``models/shipped/`` through the ordinary ``--init``
path (caption, score, retrieval) and writes the leaderboard and CLIP4IDC-tiny's report: minutes on a CPU, and the
same bytes on every machine (the captions of a saved model do not depend on the machine; the evaluation runs on the
CPU, and what does depend on it, the environment and the timings, stays in the run directories, outside the
committed light files). `idcbench demo --train` (`train=True`) first trains every learned model from scratch with its
recipe and ships it: a compact copy of the trained model into ``models/shipped/<model>/`` with its provenance (the
training run's spec, environment, validation curves, cost, and the sha256 of every shipped file).

The two baselines that learn nothing iterative are computed, not shipped: `most-frequent` counts the training
captions, `nearest-neighbour-tiny` indexes the training pairs' features of the shipped miniature CLIP.

>>> [name for name, _ in DEMO_MODELS][:2]
['most-frequent', 'nearest-neighbour-tiny']
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from idcbench import rundir
from idcbench.run import Reporter, RunRequest, RunResult, run

if TYPE_CHECKING:
    from idcbench.tables.model import Table

DEMO_DATASET = "shapes"
DEMO_SEED = 0
# (registered model, config overrides). The floor first, CLIP4IDC last: the leaderboard sorts by CIDEr-D anyway.
DEMO_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("most-frequent", {}),
    ("nearest-neighbour-tiny", {}),
    ("duda-tiny", {}),
    ("clip-diff-tiny", {}),
    ("clip4idc-tiny-noadapt", {}),
    ("clip4idc-tiny", {}),
)
LEARNED = ("duda-tiny", "clip-diff-tiny", "clip4idc-tiny-noadapt", "clip4idc-tiny")  # trained, selected on val: shipped
REPORT_MODEL = "clip4idc-tiny"  # the demo writes this model's report page
PROVENANCE = "provenance"
SUMS = "SHA256SUMS"  # the sha256 of every shipped file of a model (sha256sum's format)


def shipped_root() -> Path:
    """The package's ``models/shipped/`` (in a checkout and in an installed wheel alike)."""
    import idcbench.models

    return Path(idcbench.models.__file__).resolve().parent / "shipped"


def shipped_dir(model: str, root: str | Path | None = None) -> Path:
    return Path(root or shipped_root()) / model


@dataclass
class DemoResult:
    runs: list[RunResult]
    leaderboard: list[Path]
    report: Path | None
    tables: dict[tuple[str, str], list[Table]] = field(default_factory=dict)  # what the leaderboard files show
    shipped: list[Path] = field(default_factory=list)  # checkpoints written by `train=True`


def export_light_runs(results: Sequence[RunResult], runs_dir: Path, dest: Path) -> list[Path]:
    """Copy the light files of each run (`idcbench.rundir.copy_light`: nothing that depends on the machine) into
    ``dest`` under the same relative path (what the repository keeps)."""
    return [rundir.copy_light(r.run_dir, dest / r.run_dir.resolve().relative_to(runs_dir.resolve())) for r in results]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship(result: RunResult, name: str, dest: Path) -> Path:
    """A compact copy of a training run's model in `dest` (``models/shipped/<model>``), with its provenance and the
    sha256 of every file it ships."""
    from idcbench import factory
    from idcbench.train_log import SUFFIX

    model = factory.load(result.run_dir / rundir.MODEL_DIR, name)
    if dest.exists():
        shutil.rmtree(dest)
    factory.save(model, dest, name=name, spec_hash=result.spec.hash, compact=True)
    prov = dest / PROVENANCE
    prov.mkdir()
    for source in (rundir.SPEC, rundir.ENV, rundir.COST):
        if (result.run_dir / source).exists():
            shutil.copyfile(result.run_dir / source, prov / source)
    for log in sorted((result.run_dir / rundir.TRAIN_DIR).glob(f"*{SUFFIX}")):
        shutil.copyfile(log, prov / log.name)
    files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != SUMS)
    (dest / SUMS).write_text("".join(f"{_sha256(p)}  {p.relative_to(dest).as_posix()}\n" for p in files))
    return dest


def verify_shipped(dest: Path) -> list[str]:
    """The files of a shipped checkpoint whose sha256 is not the one recorded (empty when all match)."""
    sums = dest / SUMS
    if not sums.is_file():
        return [f"{sums} missing"]
    bad = []
    for line in sums.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        path = dest / rel
        if not path.is_file() or _sha256(path) != digest:
            bad.append(rel)
    return bad


def run_demo(
    runs_dir: str | Path = "runs",
    out_dir: str | Path = "leaderboard",
    *,
    models: Sequence[tuple[str, dict[str, Any]]] = DEMO_MODELS,
    device: str = "auto",
    force: bool = False,
    train: bool = False,
    shipped: str | Path | None = None,
    reporter: Reporter | None = None,
    resamples: int | None = None,
) -> DemoResult:
    """Evaluate every demo model on `shapes` (the learned ones from their shipped checkpoints, on the CPU: the same
    captions on every machine) and write the leaderboard and CLIP4IDC-tiny's report. With `train`, first train the
    learned models from scratch on `device` and ship them into `shipped` (default ``models/shipped/``)."""
    from idcbench.report import build_report
    from idcbench.tables.build import leaderboard_tables
    from idcbench.tables.publish import find_reports, leaderboard_files, write_leaderboard

    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    reporter = reporter or Reporter()
    written: list[Path] = []
    if train:
        for name, overrides in models:
            if name in LEARNED:
                reporter.message(f"[demo --train] {name} on {DEMO_DATASET}, from scratch")
                req = RunRequest(model=name, dataset=DEMO_DATASET, config=dict(overrides), seed=DEMO_SEED,
                                 device=device, runs_dir=runs_dir / "train", force=force, metrics=["CIDEr-D"])
                written.append(ship(run(req, reporter), name, shipped_dir(name, shipped)))
    results = []
    for name, overrides in models:
        init = shipped_dir(name, shipped) if name in LEARNED else None
        reporter.message(f"[demo] {name} on {DEMO_DATASET}" + (f" from {init}" if init else ""))
        req = RunRequest(model=name, dataset=DEMO_DATASET, config=dict(overrides), seed=DEMO_SEED, device="cpu",
                         runs_dir=runs_dir, force=force, init=init)
        results.append(run(req, reporter))
    light_dir = out_dir / "runs"
    if light_dir.exists():
        shutil.rmtree(light_dir)
    export_light_runs(results, runs_dir, light_dir)
    report = None
    main = next((r for r in results if r.spec.model == REPORT_MODEL), None)
    if main is not None:  # before the leaderboard, whose row of this run links to the report it finds beside it
        main_light = light_dir / main.run_dir.resolve().relative_to(runs_dir.resolve())
        report = build_report(main_light, out_dir / f"report-{REPORT_MODEL}.html")
    kwargs = {"resamples": resamples} if resamples is not None else {}
    tables = leaderboard_tables(light_dir, reports=find_reports(out_dir), **kwargs)
    files = write_leaderboard(leaderboard_files(tables), out_dir)
    return DemoResult(results, files, report, tables, written)
