"""The embedded demo: `shapes` -> CLIP4IDC-tiny (both stages), its ablations and the baselines -> leaderboard + report.

Runs offline on a 2-core CPU in minutes. Every model goes through the same `idcbench run` machinery
(`idcbench.run.run`), so the demo's run directories are ordinary, resumable runs; the leaderboard is built from
the light files of those runs (metrics, per-sample scores, spec, env), which are what `leaderboard/runs/` keeps in
the repository.

>>> [name for name, _ in DEMO_MODELS][:2]
['most-frequent', 'nearest-neighbour-tiny']
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from idcbench.run import Reporter, RunRequest, RunResult, run
from idcbench.scoring import METRICS_FILE, RETRIEVAL_FILE, SAMPLES_FILE

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
REPORT_MODEL = "clip4idc-tiny"  # the demo writes this model's report page
# The files of a run that the leaderboard reads; checkpoints and predictions stay in the run directory.
LIGHT_FILES = ("run_spec.json", "env.json", METRICS_FILE, SAMPLES_FILE, RETRIEVAL_FILE, "DONE")


@dataclass
class DemoResult:
    runs: list[RunResult]
    leaderboard: list[Path]
    report: Path | None
    tables: dict[tuple[str, str], list[Table]] = field(default_factory=dict)  # what the leaderboard files show


def export_light_runs(results: Sequence[RunResult], runs_dir: Path, dest: Path) -> list[Path]:
    """Copy the light files of each run into ``dest`` under the same relative path (what the repository keeps)."""
    exported = []
    for result in results:
        rel = result.run_dir.resolve().relative_to(runs_dir.resolve())
        target = dest / rel
        target.mkdir(parents=True, exist_ok=True)
        for name in LIGHT_FILES:
            if (result.run_dir / name).exists():
                shutil.copyfile(result.run_dir / name, target / name)
        exported.append(target)
    return exported


def run_demo(
    runs_dir: str | Path = "runs",
    out_dir: str | Path = "leaderboard",
    *,
    models: Sequence[tuple[str, dict[str, Any]]] = DEMO_MODELS,
    device: str = "auto",
    force: bool = False,
    reporter: Reporter | None = None,
    resamples: int | None = None,
) -> DemoResult:
    """Train and evaluate every demo model on `shapes`, then write the leaderboard and CLIP4IDC's report."""
    from idcbench.tables.build import leaderboard_tables
    from idcbench.tables.publish import find_reports, leaderboard_files, write_leaderboard
    from idcbench.report import build_report

    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    reporter = reporter or Reporter()
    results = []
    for name, overrides in models:
        reporter.message(f"[demo] {name} on {DEMO_DATASET}")
        req = RunRequest(model=name, dataset=DEMO_DATASET, config=dict(overrides), seed=DEMO_SEED, device=device,
                         runs_dir=runs_dir, force=force)
        results.append(run(req, reporter))
    light_dir = out_dir / "runs"
    if light_dir.exists():
        shutil.rmtree(light_dir)
    export_light_runs(results, runs_dir, light_dir)
    report = None
    main = next((r for r in results if r.spec.model == REPORT_MODEL), None)
    if main is not None:  # before the leaderboard, whose row of this run links to the report it finds beside it
        report = build_report(main.run_dir, out_dir / f"report-{REPORT_MODEL}.html")
    kwargs = {"resamples": resamples} if resamples is not None else {}
    tables = leaderboard_tables(light_dir, reports=find_reports(out_dir), **kwargs)
    written = write_leaderboard(leaderboard_files(tables), out_dir)
    return DemoResult(results, written, report, tables)
