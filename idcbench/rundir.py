"""The run directory, idcbench's central artefact: every file of a run, how each is read and written.

``runs/<dataset>/<model>/<spec hash>/`` holds:

- ``run_spec.json``: the hashed spec (`idcbench.spec.RunSpec`) and what is recorded beside it, not hashed (world
  size, shards, batch size, data root, device, metrics asked for, runtime config);
- ``env.json``: versions, git commit, device, CPU (`idcbench.run.record.environment`);
- ``train/``: the model's resumable training state and its validation curves (``*_log.jsonl``,
  `idcbench.train_log`); ``model/``: the model to caption with (`idcbench.factory.save`, its marker written last);
- ``predictions.jsonl``: ``{"id", "caption"}`` lines (``raw``: the model's answer before post-processing;
  ``failed``: why there is no caption), appended and fsync'ed per batch; ``predictions.rank<k>.jsonl`` (torchrun) and
  ``predictions.shard-I-of-N.jsonl`` (``--shard``) before the merge;
- ``metrics.json`` (corpus scores x100 per subset, retrieval, the run section) and ``per_sample.jsonl`` (everything a
  resample needs); ``retrieval.jsonl`` (per-pair ranks, models that embed pairs and texts);
- ``curves.json``: the validation curves of the model's training (its own, or those shipped with an ``--init``
  checkpoint): stage -> rows;
- ``cost.json``: wall seconds of training, captioning and scoring, training steps, device (machine-dependent);
- ``DONE``: written last; ``.lock`` (and ``.lock.<shard>``): held while a process works in the directory;
- a family's own files (the ``openai`` family's write-ahead log ``requests*.jsonl`` and ``usage.json``).

`LIGHT_FILES` are what a leaderboard reads and a repository keeps: none of them depends on the machine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.errors import UserError
from idcbench.files import read_json, write_atomic, write_json_atomic

SPEC = "run_spec.json"
ENV = "env.json"
TRAIN_DIR = "train"
MODEL_DIR = "model"
PREDICTIONS = "predictions.jsonl"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "per_sample.jsonl"
RETRIEVAL_FILE = "retrieval.jsonl"
CURVES = "curves.json"
COST = "cost.json"
DONE = "DONE"
LOCK_FILE = ".lock"
# what a leaderboard reads and a repository keeps; run_spec.json without `MACHINE_KEYS`
LIGHT_FILES = (SPEC, METRICS_FILE, SAMPLES_FILE, RETRIEVAL_FILE, CURVES)
MACHINE_KEYS = ("data_root", "device")  # recorded beside the spec, different on every machine
SCORE_FILES = (DONE, METRICS_FILE, SAMPLES_FILE, RETRIEVAL_FILE)  # what scoring writes (a --force of a shard drops)


# ------------------------------------------------------------------------------------------------------ spec, env
def read_spec(run_dir: Path) -> dict[str, Any]:
    """``run_spec.json`` as written (the spec under ``spec``, the recorded facts beside it); {} when absent."""
    path = Path(run_dir) / SPEC
    if not path.exists():
        return {}
    saved = read_json(path, what="run spec")
    return saved if isinstance(saved, dict) else {}


def write_spec(run_dir: Path, spec_hash: str, spec: Mapping[str, Any], recorded: Mapping[str, Any]) -> None:
    """Write ``run_spec.json``; a directory that holds another run's spec is refused."""
    old = read_spec(run_dir)
    if old and old.get("spec_hash") != spec_hash:
        raise UserError(f"{Path(run_dir) / SPEC}: belongs to another run (hash {str(old.get('spec_hash'))[:16]}); "
                        "move that directory away or use --force")
    write_json_atomic(Path(run_dir) / SPEC, {"spec_hash": spec_hash, "spec": dict(spec), **recorded}, sort_keys=True)


def write_env(run_dir: Path, env: Mapping[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / ENV, dict(env), sort_keys=True)


def read_env(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / ENV
    return read_json(path, what="environment file") if path.exists() else {}


# ------------------------------------------------------------------------------------------------- predictions
def partial_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("predictions.rank*.jsonl")) + sorted(run_dir.glob("predictions.shard-*-of-*.jsonl"))


def shard_file(index: int, count: int) -> str:
    return f"predictions.shard-{index}-of-{count}.jsonl"


def rank_file(rank: int) -> str:
    return f"predictions.rank{rank}.jsonl"


def prediction_record(example_id: str, caption: str) -> dict[str, str]:
    """A predictions line; a `Caption` also keeps its raw answer (``raw``) beside the scored caption, and why there
    is none (``failed``)."""
    rec = {"id": example_id, "caption": str(caption)}
    for extra in ("raw", "failed"):
        value = getattr(caption, extra, None)
        if isinstance(value, str):
            rec[extra] = value
    return rec


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, str]]:
    """Records of an append-only predictions file. A torn last line (no newline: the process died while writing it)
    is dropped, and with `repair` cut from the file so that appending continues cleanly."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for lineno, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec.get("id"), str) or not isinstance(rec.get("caption"), str):
                raise ValueError("needs string 'id' and 'caption'")
        except (json.JSONDecodeError, ValueError, AttributeError) as e:
            raise UserError(f"{path}: line {lineno} is not a prediction record ({e}); delete the file to recompute "
                            "it, or rerun with --force") from None
        kept = {"id": rec["id"], "caption": rec["caption"]}
        for extra in ("raw", "failed"):  # a model's raw answer (`Caption.raw`); why it has none (`Caption.failed`)
            if isinstance(rec.get(extra), str):
                kept[extra] = rec[extra]
        records.append(kept)
    return records


def collect_records(run_dir: Path, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every pair's record saved in the run directory (``raw`` and ``failed`` kept where a file has them).

    Within one file an id occurs once, but for a failed line that a later line replaces; across files the same id
    may occur only with the same caption (a merge killed before it removed the rank files), a failed line giving way
    to any other; an id outside the split is an error."""
    known = set(ids)
    out: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    for path in [run_dir / PREDICTIONS, *partial_files(run_dir)]:
        seen: set[str] = set()
        for rec in read_records(path):
            i, cap = rec["id"], rec["caption"]
            if i in seen and "failed" not in out[i]:
                raise UserError(f"{path}: id {i!r} occurs twice; delete the file to recompute it, or rerun with --force")
            seen.add(i)
            if i not in known:
                raise UserError(f"{path}: id {i!r} is not in the evaluated split; this run directory does not match, "
                                "rerun with --force")
            if i in out and "failed" not in out[i] and "failed" not in rec and out[i]["caption"] != cap:
                raise UserError(f"id {i!r} has different captions in {origin[i]} and {path.name}; rerun with --force")
            if i not in out or "failed" in out[i] or ("raw" in rec and "failed" not in rec):
                out[i], origin[i] = rec, path.name
    return out


def collect_predictions(run_dir: Path, ids: Sequence[str]) -> dict[str, str]:
    """The pairs done in the run directory (merged file, rank and shard files): id -> caption. Failed pairs are not
    done (a rerun asks them again); `collect_records` has them too."""
    return {i: r["caption"] for i, r in collect_records(run_dir, ids).items() if "failed" not in r}


def failed_predictions(run_dir: Path) -> dict[str, str]:
    """The failed pairs of the run's merged predictions file: id -> why the model has no caption."""
    return {r["id"]: r["failed"] for r in read_records(run_dir / PREDICTIONS) if "failed" in r}


def merge_predictions(run_dir: Path, ids: Sequence[str]) -> dict[str, str]:
    """Merge every predictions file into predictions.jsonl in the order of `ids` (atomic), then drop the partial
    files; returns id -> caption."""
    from idcbench.distributed import merge_ordered

    records = merge_ordered(collect_records(run_dir, ids).values(), ids, where=str(run_dir))
    write_atomic(run_dir / PREDICTIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for path in partial_files(run_dir):
        path.unlink(missing_ok=True)
    return {r["id"]: r["caption"] for r in records}


# ------------------------------------------------------------------------------------------------------- scores
def write_scores(run_dir: str | Path, metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``metrics.json`` and ``per_sample.jsonl`` into `run_dir`, each atomically (samples first)."""
    run_dir = Path(run_dir)
    write_atomic(run_dir / SAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_atomic(run_dir / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``metrics.json``; a `UserError` when it is absent or not an idcbench metrics file."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise UserError(f"{run_dir}: no metrics.json (unfinished run?); finish it with `idcbench run` first")
    metrics = read_json(path, what="metrics file")
    if not isinstance(metrics, dict) or "subsets" not in metrics:
        raise UserError(f"{path}: not an idcbench metrics file (no 'subsets')")
    return metrics


def load_samples(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``per_sample.jsonl`` (see `idcbench.scoring.save_report`), ready for resampling."""
    path = Path(run_dir) / SAMPLES_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (is {run_dir} a scored run directory?)")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}: line {lineno}, column {e.colno}: invalid JSON ({e.msg})") from None
    return rows


def write_retrieval(run_dir: Path, ranks: Sequence[Mapping[str, Any]] | None) -> None:
    """``retrieval.jsonl`` (per-pair ranks); None removes a stale one (a rescore without the model)."""
    path = Path(run_dir) / RETRIEVAL_FILE
    if ranks is None:
        path.unlink(missing_ok=True)
    else:
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in ranks))


def read_retrieval_ranks(run_dir: Path) -> list[dict] | None:
    """The run's per-pair retrieval ranks (``retrieval.jsonl``), sorted by id; None for runs without that file, a
    `UserError` for a file that is not one."""
    path = Path(run_dir) / RETRIEVAL_FILE
    if not path.is_file():
        return None
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not all(isinstance(r, dict) and "id" in r and isinstance(r.get("t2p"), list) for r in rows):
            raise ValueError("every row needs an id and a t2p list")
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
        raise UserError(f"{path}: not a retrieval ranks file ({e}); rerun `idcbench score` on the run") from None
    return sorted(rows, key=lambda r: str(r["id"]))


# -------------------------------------------------------------------------------------------------------- DONE
def read_done(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / DONE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # unreadable DONE: treat as not done, everything is recomputed from what is saved


def write_done(run_dir: Path, spec_hash: str, metrics: Sequence[str]) -> None:
    write_json_atomic(Path(run_dir) / DONE, {"spec_hash": spec_hash, "metrics": list(metrics),
                                             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def clear_done(run_dir: Path) -> None:
    (Path(run_dir) / DONE).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ curves, cost
def write_curves(run_dir: Path, source: Path | None) -> None:
    """``curves.json``: the validation curves in `source` (a run's ``train/`` folder, or a shipped checkpoint's
    provenance), stage -> rows; nothing when there are none."""
    from idcbench.train_log import read_curves

    curves = read_curves(source) if source is not None and Path(source).is_dir() else {}
    if curves:  # (a rescore that does not know where they came from keeps the file as it is)
        write_atomic(Path(run_dir) / CURVES, json.dumps(curves, indent=1, sort_keys=True) + "\n")


def read_curves(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    path = Path(run_dir) / CURVES
    return read_json(path, what="training curves") if path.is_file() else {}


def add_cost(run_dir: Path, **entries: Any) -> None:
    """Record what a part of the run cost in ``cost.json``: seconds add up over resumed processes (``*_seconds``),
    other entries are set."""
    path = Path(run_dir) / COST
    cost = read_json(path, what="cost file") if path.is_file() else {}
    for key, value in entries.items():
        if key.endswith("_seconds") and value is not None:
            cost[key] = round(float(cost.get(key, 0.0)) + float(value), 2)
        else:
            cost[key] = value
    write_json_atomic(path, cost, sort_keys=True)


def read_cost(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / COST
    return read_json(path, what="cost file") if path.is_file() else {}


# ---------------------------------------------------------------------------------------------- light copies
def copy_light(run_dir: Path, target: Path) -> Path:
    """Copy the run's `LIGHT_FILES` into `target` (what a leaderboard reads and a repository keeps), run_spec.json
    without the facts of the machine."""
    target.mkdir(parents=True, exist_ok=True)
    for name in LIGHT_FILES:
        source = Path(run_dir) / name
        if not source.exists():
            continue
        if name == SPEC:
            light = {k: v for k, v in read_spec(run_dir).items() if k not in MACHINE_KEYS}
            write_atomic(target / name, json.dumps(light, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            write_atomic(target / name, source.read_bytes())
    return target
