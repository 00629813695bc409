"""Runs: `idcbench run` and `idcbench score`, one module per stage, each importing only the ones before it.

``reporter`` (progress callbacks) -> ``request`` (RunRequest -> Prepared: all validation, before any work) ->
``record`` (run_spec.json, env.json) -> ``lock`` (one process per run directory) -> ``model`` (train, load or --init)
-> ``caption`` (batches, shards, write-ahead predictions, merge) -> ``score`` (finalize, score_run) -> ``pipeline``
(`run`: the stages in order).

>>> from idcbench.run import RunRequest
>>> RunRequest("most-frequent", "shapes").split
'test'
"""

from idcbench.run.pipeline import run
from idcbench.run.reporter import Reporter
from idcbench.run.request import RunRequest, RunResult, parse_config
from idcbench.run.score import score_run

__all__ = ["Reporter", "RunRequest", "RunResult", "parse_config", "run", "score_run"]
