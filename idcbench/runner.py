"""A run: RunSpec -> train or load -> caption (sharded, resumable) -> score -> run directory.

`run(RunRequest(...))` is what `idcbench run` calls; `score_run(run_dir)` is what `idcbench score` calls. The run
directory (``runs/<dataset>/<model>/<spec hash>/``) holds:

- ``run_spec.json``: the hashed spec plus what is recorded but not hashed (world size, data root, batch size);
- ``env.json``: idcbench version and git commit, torch / open_clip / pycocoevalcap / Java versions, device;
- ``train/``: the model's resumable training state; ``model/``: the model to caption with (saved by `Captioner.save`);
- ``predictions.jsonl``: ``{"id", "caption"}`` per line, appended and fsync'ed per batch, rewritten in dataset order
  at the end; under torchrun each rank appends to ``predictions.rank<k>.jsonl``, with ``--shard I --num-shards N`` to
  ``predictions.shard-I-of-N.jsonl``; the merge checks that every id is present exactly once;
- ``metrics.json`` and ``per_sample.jsonl`` (from `idcbench.scoring.save_report`, plus ``run`` and ``retrieval``);
- ``retrieval.jsonl`` (models that embed pairs and texts): per pair, the text->pair ranks of its captions and its
  pair->text rank, which the bootstrap intervals of R@K resample;
- ``DONE``: written last. A run with DONE is reused; ``--force`` redoes it.

Killed at any point, the same command continues: training resumes from ``train/`` (the model's job), captioning skips
the ids already in a predictions file (a torn last line is dropped), scoring is recomputed. Whole files are written
atomically, so nothing saved is ever half-written.

>>> parse_config(["epochs=2", "lr=1e-4", "name=vit", "flags=[1, 2]", "fp16=true"])
{'epochs': 2, 'lr': 0.0001, 'name': 'vit', 'flags': [1, 2], 'fp16': True}
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from idcbench import __version__
from idcbench.captioner import Captioner, FitContext, ModelSpec, RetrievalModel, deep_merge
from idcbench.data import Dataset, Example, load_dataset
from idcbench.distributed import (
    DistInfo, barrier, destroy_process_group, dist_info, init_process_group, merge_ordered, shard,
)
from idcbench.errors import UserError, read_json
from idcbench.scoring import METRICS_FILE, RETRIEVAL_FILE, SAMPLES_FILE
from idcbench.spec import (
    RunSpec, canonical_json, decoding_settings, file_sha256, manifest_hash, write_json_atomic,
)
from idcbench.files import write_atomic

PREDICTIONS = "predictions.jsonl"
MODEL_DIR = "model"
TRAIN_DIR = "train"
MODEL_MARKER = "idcbench-model.json"  # written into model/ last: its presence means the saved model is complete
DEBUG_DELAY_ENV = "IDCBENCH_DEBUG_BATCH_DELAY"  # seconds to sleep after each captioned batch (tests kill runs)


# ----------------------------------------------------------------------------------------------------------- inputs
@dataclass
class RunRequest:
    """What `idcbench run` was asked to do (CLI options, unresolved)."""

    model: str
    dataset: str
    data_root: str | Path | None = None
    split: str = "test"
    init: str | Path | None = None
    train: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    batch_size: int = 32
    limit: int | None = None
    runs_dir: str | Path = "runs"
    force: bool = False
    metrics: list[str] | None = None
    shard: int | None = None
    num_shards: int | None = None


@dataclass
class RunResult:
    run_dir: Path
    spec: RunSpec
    status: str  # "done" (computed now), "reused" (DONE was there) or "shard" (one shard captioned)
    metrics: dict[str, Any] | None = None


def parse_config(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict; values are JSON (numbers, bools, lists, objects, null) when they parse, else
    strings. A dotted key sets a nested entry: ``stage2.epochs=1`` -> ``{"stage2": {"epochs": 1}}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip() or any(not k for k in key.strip().split(".")):
            raise UserError(f"--config {item!r}: expected KEY=VALUE (e.g. --config epochs=2 or stage2.epochs=1)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, last = key.strip().split(".")
        node = out
        for k in parents:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise UserError(f"--config {item!r}: {k} is set to a value and used as a group")
        node[last] = deep_merge(node[last], value) if isinstance(node.get(last), dict) and isinstance(value, dict) else value
    return out


class Reporter:
    """Progress callbacks of a run; this base class ignores them. The CLI passes a rich one on rank 0 only."""

    def message(self, text: str) -> None: ...

    def train(self, stage: str, step: int, total: int, logs: Mapping[str, float]) -> None: ...

    def begin(self, task: str, total: int, completed: int = 0) -> None: ...

    def advance(self, task: str, n: int = 1) -> None: ...

    def update(self, task: str, completed: int, total: int, info: str = "") -> None: ...

    def end(self, task: str) -> None: ...


# ---------------------------------------------------------------------------------------------------------- helpers
def resolve_device(device: str, info: DistInfo = DistInfo()) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; under torchrun each rank gets ``cuda:<local rank>``."""
    import torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: choose auto, cpu or cuda")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device visible to torch; use --device cpu")
        if device == "cuda" and info.distributed:
            device = f"cuda:{info.local_rank}"
    return device


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _model_spec(name: str) -> ModelSpec:
    from idcbench.registry import MODELS

    return MODELS.get(name)


def _family_name(spec: ModelSpec) -> str:
    """The captioner class's name: checkpoints of one family load into each of its variants (shapes permitting)."""
    return spec.family.__qualname__


def _split_examples(dataset: Dataset, split: str, limit: int | None) -> list[Example]:
    dataset.check_split(split)
    examples = list(dataset.examples(split))
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit {limit}: must be at least 1")
        examples = examples[:limit]
    if not examples:
        raise UserError(f"{dataset.info.name}: split {split!r} has no examples")
    return examples


def _load_dataset(name: str, root: str | Path | None) -> Dataset:
    try:
        return load_dataset(name, root)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise UserError(f"dataset {name}: {e.filename or e}: not found (check --data-root)") from None


# ----------------------------------------------------------------------------------------------------------- prepare
@dataclass
class Prepared:
    """A request resolved against the registries and the data: the spec and what is needed to execute it."""

    request: RunRequest
    spec: RunSpec
    run_dir: Path
    dataset: Dataset
    examples: list[Example]
    model_spec: ModelSpec
    device: str
    info: DistInfo


def prepare(req: RunRequest, info: DistInfo | None = None, device: str | None = None) -> Prepared:
    """Resolve names, data and checkpoint into a frozen `RunSpec` and its run directory. Builds no model."""
    info = info or dist_info()
    if req.init is not None and req.train:
        raise UserError("--init and --train exclude each other: --init evaluates a checkpoint, --train trains one")
    if req.batch_size < 1:
        raise UserError(f"--batch-size {req.batch_size}: must be at least 1")
    model_spec = _model_spec(req.model)  # unknown model: "did you mean"
    dataset = _load_dataset(req.dataset, req.data_root)
    examples = _split_examples(dataset, req.split, req.limit)
    config = json.loads(canonical_json(deep_merge(model_spec.config, req.config)))
    checkpoint = None
    if req.init is not None:
        init = Path(req.init)
        if not init.exists():
            raise UserError(f"--init {init}: checkpoint not found")
        checkpoint = file_sha256(init)
    train = req.init is None and bool(getattr(model_spec.family, "trainable", True))
    train_manifest = None
    if train:
        if "train" not in dataset.splits():
            raise UserError(f"{req.dataset} has no train split to train {req.model} on; pass --init CKPT")
        train_manifest = manifest_hash(_fit_examples(dataset, "train") + _fit_examples(dataset, "val"))
    spec = RunSpec(
        model=req.model, config=config, dataset=req.dataset, split=req.split, manifest=manifest_hash(examples),
        checkpoint=checkpoint, train=train, train_manifest=train_manifest, decoding=decoding_settings(config),
        seed=req.seed, limit=req.limit,
    )
    device = device or resolve_device(req.device, info)
    return Prepared(req, spec, spec.run_dir(req.runs_dir), dataset, examples, model_spec, device, info)


def _fit_examples(dataset: Dataset, split: str) -> list[Example]:
    return list(dataset.examples(split)) if split in dataset.splits() else []


# -------------------------------------------------------------------------------------------------------- run files
def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _java_version() -> str | None:
    from idcbench.metrics._java import java_version_text

    java = shutil.which("java")
    return java_version_text(java) if java else None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def environment(device: str, info: DistInfo) -> dict[str, Any]:
    """What env.json records: software versions and the device (not hashed: it does not change the result)."""
    import torch

    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {
        "idcbench": __version__, "git_commit": _git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "open_clip": _version("open_clip_torch"), "pycocoevalcap": _version("pycocoevalcap"),
        "java": _java_version(), "device": dev, "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        "world_size": info.world_size, "launcher": info.launcher,
    }


def _write_run_files(p: Prepared, *, num_shards: int | None = None) -> None:
    spec_file = p.run_dir / "run_spec.json"
    if spec_file.exists():
        old = read_json(spec_file, what="run spec")
        if old.get("spec_hash") != p.spec.hash:
            raise UserError(f"{spec_file}: belongs to another run (hash {str(old.get('spec_hash'))[:16]}); "
                            "move that directory away or use --force")
    write_json_atomic(spec_file, {
        "spec_hash": p.spec.hash, "spec": p.spec.to_dict(),
        # Recorded, not hashed: results are identical across these.
        "world_size": p.info.world_size, "num_shards": num_shards, "batch_size": p.request.batch_size,
        "data_root": str(p.dataset.root), "device": p.device, "metrics": p.request.metrics,
    }, sort_keys=True)
    write_json_atomic(p.run_dir / "env.json", environment(p.device, p.info), sort_keys=True)


# ------------------------------------------------------------------------------------------------------------- model
def _wrap_load_error(what: str, model: str, err: Exception) -> UserError:
    first = " ".join(str(err).split())[:300]
    return UserError(f"{what}: not a checkpoint of model {model!r} (or of another shape): {type(err).__name__}: {first}")


def _load_saved(directory: Path, p: Prepared, *, what: str) -> Captioner:
    marker = directory / MODEL_MARKER
    if marker.exists():
        meta = read_json(marker, what="model marker")
        if meta.get("family") != _family_name(p.model_spec):
            raise UserError(f"{what}: saved by model {meta.get('model')!r} ({meta.get('family')}), "
                            f"not by {p.request.model!r}; pass a checkpoint of {p.request.model}")
    try:
        model = p.model_spec.family.load(directory, **p.request.config)
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, OSError, EOFError, json.JSONDecodeError) as e:
        raise _wrap_load_error(what, p.request.model, e) from None
    return model.to(p.device)


def _build(p: Prepared, **extra: Any) -> Captioner:
    """A fresh model from the run's resolved config (variant config deep-merged with --config)."""
    return p.model_spec.family({**p.spec.config, **extra})


def _load_init(p: Prepared) -> Captioner:
    """--init: a directory saved by `Captioner.save` is loaded by the family; a file goes to the model as its
    ``init`` config entry (e.g. CLIP4IDC's official ``pytorch_model.bin.*``)."""
    init = Path(p.request.init)  # type: ignore[arg-type]
    if init.is_dir():
        return _load_saved(init, p, what=f"--init {init}")
    try:
        model = _build(p, init=str(init.resolve()))
    except UserError:
        raise
    except (RuntimeError, KeyError, ValueError, TypeError, OSError, EOFError) as e:
        raise _wrap_load_error(f"--init {init}", p.request.model, e) from None
    return model.to(p.device)


def _save_model(model: Captioner, p: Prepared) -> None:
    """Save into a temporary folder, mark it complete, then rename it to model/ (atomic; concurrent shards agree)."""
    target = p.run_dir / MODEL_DIR
    tmp = p.run_dir / f".{MODEL_DIR}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save(tmp)
        write_json_atomic(tmp / MODEL_MARKER, {
            "model": p.request.model, "family": _family_name(p.model_spec), "spec_hash": p.spec.hash,
        })
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MODEL_MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def obtain_model(p: Prepared, reporter: Reporter, *, may_train: bool = True,
                 init_model: Captioner | None = None) -> Captioner:
    """The model of the run: loaded from model/ when saved; else from --init (`init_model` when already loaded),
    built, or trained (then saved)."""
    target = p.run_dir / MODEL_DIR
    if not (target / MODEL_MARKER).exists():
        if p.info.is_main and target.exists():
            shutil.rmtree(target)  # left by something else than _save_model: incomplete by definition
        if p.spec.train:
            if not may_train:
                raise UserError(f"{p.run_dir}: the model is not trained yet; run shard 0 first (it trains and saves "
                                f"{MODEL_DIR}/), or pass --init CKPT")
            _seed_everything(p.spec.seed)  # before building: random initialisation is part of the result
            model = _build(p).to(p.device)
            ctx = FitContext(workdir=p.run_dir / TRAIN_DIR, seed=p.spec.seed, device=p.device,
                             on_progress=reporter.train if p.info.is_main else None,
                             rank=p.info.rank, world_size=p.info.world_size)
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            train, val = _fit_examples(p.dataset, "train"), _fit_examples(p.dataset, "val")
            reporter.message(f"training {p.request.model} on {p.request.dataset} train ({len(train)} examples, "
                             f"val {len(val)}); state in {ctx.workdir}")
            model.fit(train, val, ctx)
            if p.info.is_main:
                _save_model(model, p)
            del model  # captioning uses the saved copy; do not hold two in memory
        elif p.info.is_main:
            _seed_everything(p.spec.seed)
            if p.request.init is not None:
                model = init_model or _load_init(p)
            else:
                model = _build(p)
            _save_model(model, p)
        barrier()
    # Every process and every resumed run captions with the weights read back from model/: identical captions.
    return _load_saved(target, p, what=str(target))


# -------------------------------------------------------------------------------------------------------- captioning
def _partial_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("predictions.rank*.jsonl")) + sorted(run_dir.glob("predictions.shard-*-of-*.jsonl"))


def shard_file(index: int, count: int) -> str:
    return f"predictions.shard-{index}-of-{count}.jsonl"


def read_predictions(path: Path, *, repair: bool = False) -> list[dict[str, str]]:
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
        records.append({"id": rec["id"], "caption": rec["caption"]})
    return records


def collect_predictions(run_dir: Path, ids: Sequence[str]) -> dict[str, str]:
    """All predictions saved in the run directory (merged file, rank and shard files).

    Within one file an id occurs once; across files the same id may occur only with the same caption (a merge
    killed before it removed the rank files); an id outside the split is an error."""
    known = set(ids)
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in [run_dir / PREDICTIONS, *_partial_files(run_dir)]:
        seen: set[str] = set()
        for rec in read_predictions(path):
            i, cap = rec["id"], rec["caption"]
            if i in seen:
                raise UserError(f"{path}: id {i!r} occurs twice; delete the file to recompute it, or rerun with --force")
            seen.add(i)
            if i not in known:
                raise UserError(f"{path}: id {i!r} is not in the evaluated split; this run directory does not match, "
                                "rerun with --force")
            if i in out and out[i] != cap:
                raise UserError(f"id {i!r} has different captions in {origin[i]} and {path.name}; rerun with --force")
            out[i], origin[i] = cap, path.name
    return out


def caption_examples(model: Captioner, examples: Sequence[Example], out_file: Path, *, batch_size: int,
                     done: Mapping[str, str], reporter: Reporter, label: str = "caption") -> int:
    """Caption the examples not in `done`, appending ``{"id", "caption"}`` lines to `out_file`, flushed and fsync'ed
    per batch. Returns the number captioned now."""
    todo = [e for e in examples if e.id not in done]
    read_predictions(out_file, repair=True)
    delay = float(os.environ.get(DEBUG_DELAY_ENV, "0") or 0)
    reporter.begin(label, len(examples), len(examples) - len(todo))
    n = 0
    with open(out_file, "a", encoding="utf-8") as f:
        for batch in _batches(todo, batch_size):
            try:
                captions = model.caption(batch if getattr(model, "accepts_examples", False) else [e.pair for e in batch])
            except UserError:
                raise
            except OSError as e:  # PIL's UnidentifiedImageError is an OSError
                import errno

                if getattr(e, "errno", None) == errno.ENOSPC:
                    raise
                raise UserError(f"captioning {batch[0].id} .. {batch[-1].id}: cannot read an image: {e}") from None
            if len(captions) != len(batch) or not all(isinstance(c, str) for c in captions):
                raise RuntimeError(f"{type(model).__name__}.caption returned {len(captions)} items for "
                                   f"{len(batch)} pairs (expected one string per pair)")
            f.write("".join(json.dumps({"id": e.id, "caption": c}, ensure_ascii=False) + "\n"
                            for e, c in zip(batch, captions)))
            f.flush()
            os.fsync(f.fileno())
            n += len(batch)
            reporter.advance(label, len(batch))
            if delay:
                time.sleep(delay)
    reporter.end(label)
    return n


def merge_predictions(run_dir: Path, examples: Sequence[Example]) -> dict[str, str]:
    """Merge every predictions file into predictions.jsonl in dataset order (atomic), then drop the partial files."""
    ids = [e.id for e in examples]
    preds = collect_predictions(run_dir, ids)
    records = merge_ordered(({"id": i, "caption": c} for i, c in preds.items()), ids, where=str(run_dir))
    write_atomic(run_dir / PREDICTIONS,
                 "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for path in _partial_files(run_dir):
        path.unlink(missing_ok=True)
    return {r["id"]: r["caption"] for r in records}


# ------------------------------------------------------------------------------------------------------------ scoring
def split_subsets(dataset: Dataset, split: str, examples: Sequence[Example]) -> dict[str, list[str]]:
    """The dataset's subsets restricted to the evaluated examples (``--limit``); empty subsets are dropped."""
    kept = {e.id for e in examples}
    subsets = {name: [i for i in ids if i in kept] for name, ids in dataset.subsets(split).items()}
    subsets = {name: ids for name, ids in subsets.items() if ids}
    subsets.setdefault("total", [e.id for e in examples])
    return subsets


def retrieval_examples(examples: Sequence[Example]) -> list[Example]:
    """CLIP4IDC scores retrieval on semantic-change pairs only (CLEVR-style ``kind`` tag); untagged data: all."""
    return [e for e in examples if e.tags.get("kind") in (None, "semantic") and any(r.strip() for r in e.references)]


def score_retrieval(model: Any, examples: Sequence[Example], *, batch_size: int,
                    reporter: Reporter) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Text->pair and pair->text R@k of a `RetrievalModel`, the split's reference captions as the texts
    (`idcbench.metrics.retrieval`, CLIP4Clip multi-sentence protocol; ties count against the query), and the
    per-pair ranks behind them."""
    import torch

    from idcbench.metrics.retrieval import per_example_ranks, similarity

    chosen = retrieval_examples(examples)
    if len(chosen) < 2:
        return None
    reporter.begin("retrieval", 1)
    with torch.no_grad():
        sim, owner, kept = similarity(model, chosen, batch_size=batch_size)
    reporter.advance("retrieval", 1)
    reporter.end("retrieval")
    metrics, rows = per_example_ranks(sim, owner, [e.id for e in kept])
    result: dict[str, Any] = dict(metrics)
    result["subset"] = "semantic" if any(e.tags.get("kind") for e in chosen) else "total"
    return result, rows


def _score(predictions: dict[str, str], references: dict[str, list[str]], subsets: dict[str, list[str]],
           metrics: list[str] | None, tags: dict[str, dict[str, str]], reporter: Reporter) -> Any:
    from idcbench import scoring

    def progress(stage: str, done: int, total: int) -> None:
        reporter.update("score", done, total, stage)

    reporter.begin("score", 1)
    report = scoring.score(predictions, references, subsets, metrics, progress=progress, tags=tags)
    reporter.end("score")
    return report


def finalize(p: Prepared, model: Captioner | None, reporter: Reporter, *, num_shards: int | None = None) -> dict:
    """Merge predictions, score every metric on every subset (+ retrieval), write metrics.json and DONE."""
    from idcbench import scoring

    run_dir = p.run_dir
    preds = merge_predictions(run_dir, p.examples)
    references = {e.id: list(e.references) for e in p.examples}
    tags = {e.id: dict(e.tags) for e in p.examples}
    subsets = split_subsets(p.dataset, p.spec.split, p.examples)
    report = _score(preds, references, subsets, p.request.metrics, tags, reporter)
    retrieval = None
    if model is not None and isinstance(model, RetrievalModel):
        retrieval = score_retrieval(model, p.examples, batch_size=p.request.batch_size, reporter=reporter)
    extra: dict[str, Any] = {"run": {
        "model": p.spec.model, "dataset": p.spec.dataset, "split": p.spec.split, "seed": p.spec.seed,
        "spec_hash": p.spec.hash, "world_size": p.info.world_size, "num_shards": num_shards, "n": len(p.examples),
        "limit": p.spec.limit,
    }}
    if retrieval is not None:
        extra["retrieval"], ranks = retrieval
        write_atomic(run_dir / RETRIEVAL_FILE, "".join(json.dumps(r) + "\n" for r in ranks))
    else:
        (run_dir / RETRIEVAL_FILE).unlink(missing_ok=True)  # a rescore without the model: no stale ranks
    metrics = scoring.save_report(report, run_dir, extra)
    write_json_atomic(run_dir / "DONE", {"spec_hash": p.spec.hash, "metrics": p.request.metrics,
                                         "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return metrics


def _done(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "DONE"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # unreadable DONE: treat as not done, everything is recomputed from what is saved


# ---------------------------------------------------------------------------------------------------------------- run
def run(req: RunRequest, reporter: Reporter | None = None) -> RunResult:
    """Execute (or reuse) a run. Under torchrun every rank calls this; rank 0 merges and scores."""
    reporter = reporter or Reporter()
    info = dist_info()
    sharded = req.shard is not None or req.num_shards is not None
    if sharded:
        if req.shard is None or req.num_shards is None:
            raise UserError("--shard and --num-shards go together (e.g. --shard 0 --num-shards 4)")
        if info.distributed:
            raise UserError("--shard is for separate jobs, one process each; do not combine it with torchrun")
        shard(range(1), req.shard, req.num_shards)  # validates the pair
    device = resolve_device(req.device, info)
    started = init_process_group(info, device)
    try:
        return _run(req, reporter, info, device, sharded)
    finally:
        if started:
            destroy_process_group()


def _run(req: RunRequest, reporter: Reporter, info: DistInfo, device: str, sharded: bool) -> RunResult:
    p = prepare(req, info, device)
    run_dir = p.run_dir
    if req.force:
        if sharded:
            for name in ("DONE", METRICS_FILE, SAMPLES_FILE, RETRIEVAL_FILE, PREDICTIONS,
                         shard_file(req.shard, req.num_shards)):
                (run_dir / name).unlink(missing_ok=True)
        elif info.is_main and run_dir.exists():
            shutil.rmtree(run_dir)
        barrier()
    done = _done(run_dir)
    if done is not None and done.get("spec_hash") == p.spec.hash:
        if sharded or done.get("metrics") == req.metrics:
            return RunResult(run_dir, p.spec, "reused", read_json(run_dir / METRICS_FILE, what="metrics file"))
    init_model = None
    if req.init is not None and info.is_main and not (run_dir / MODEL_DIR / MODEL_MARKER).exists():
        init_model = _load_init(p)  # a wrong checkpoint fails before the run directory is created
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_run_files(p, num_shards=req.num_shards)
    barrier()
    reporter.message(f"run directory {run_dir}")
    model = obtain_model(p, reporter, may_train=not sharded or req.shard == 0, init_model=init_model)

    ids = [e.id for e in p.examples]
    if sharded:
        mine = shard(p.examples, req.shard, req.num_shards)
        out_file, label = run_dir / shard_file(req.shard, req.num_shards), f"caption shard {req.shard}/{req.num_shards}"
    elif info.distributed:  # strided shard per rank; the bar shows rank 0's share
        mine = shard(p.examples, info.rank, info.world_size)
        out_file, label = run_dir / f"predictions.rank{info.rank}.jsonl", f"caption (rank 0 of {info.world_size})"
    else:
        mine, out_file, label = p.examples, run_dir / PREDICTIONS, "caption"
    done_preds = collect_predictions(run_dir, ids)
    barrier()  # nobody appends before every rank has read the saved predictions
    caption_examples(model, mine, out_file, batch_size=req.batch_size, done=done_preds, reporter=reporter, label=label)
    if sharded:
        return RunResult(run_dir, p.spec, "shard")
    barrier()
    metrics = None
    if info.is_main:
        metrics = finalize(p, model, reporter)
    barrier()
    return RunResult(run_dir, p.spec, "done", metrics)


# ------------------------------------------------------------------------------------------------------------- score
def missing_shards(run_dir: Path, examples: Sequence[Example]) -> list[str]:
    """Descriptions of shards that are absent or incomplete (empty when every id has a prediction)."""
    ids = [e.id for e in examples]
    have = collect_predictions(run_dir, ids)
    if len(have) == len(ids):
        return []
    files = run_dir.glob("predictions.shard-*-of-*.jsonl")
    counts = sorted({int(f.name.rsplit("-of-", 1)[1].split(".")[0]) for f in files})
    if not counts:
        return [f"no shard files in {run_dir} and {len(ids) - len(have)} of {len(ids)} predictions missing"]
    problems = []
    for n in counts:
        for i in range(n):
            part = shard(examples, i, n)
            got = sum(e.id in have for e in part)
            if got < len(part):
                f = shard_file(i, n)
                problems.append(f"shard {i} of {n} ({f}: missing)" if not (run_dir / f).exists()
                                else f"shard {i} of {n} ({f}: {got}/{len(part)} predictions, incomplete)")
    return problems


def score_run(run_dir: str | Path, *, data_root: str | Path | None = None, metrics: list[str] | None = None,
              device: str = "auto", batch_size: int | None = None, reporter: Reporter | None = None) -> RunResult:
    """`idcbench score RUN_DIR`: merge the shard files of a run directory and score it (once every shard is there).
    `metrics` defaults to the ones the run was started with."""
    reporter = reporter or Reporter()
    run_dir = Path(run_dir)
    spec_file = run_dir / "run_spec.json"
    if not spec_file.exists():
        raise UserError(f"{run_dir}: not a run directory (no run_spec.json); `idcbench run` creates one")
    saved = read_json(spec_file, what="run spec")
    spec = RunSpec.from_dict(saved["spec"])
    req = RunRequest(model=spec.model, dataset=spec.dataset, data_root=data_root or saved.get("data_root"),
                     split=spec.split, config={}, seed=spec.seed, device=device,
                     batch_size=batch_size or saved.get("batch_size") or 32, limit=spec.limit,
                     runs_dir=run_dir.parents[2], metrics=metrics if metrics is not None else saved.get("metrics"))
    dataset = _load_dataset(spec.dataset, req.data_root)
    examples = _split_examples(dataset, spec.split, spec.limit)
    if manifest_hash(examples) != spec.manifest:
        raise UserError(f"{run_dir}: the {spec.dataset} {spec.split} examples under {dataset.root} differ from the ones "
                        "this run captioned (manifest hash); point --data-root at the same data")
    problems = missing_shards(run_dir, examples)
    if problems:
        raise UserError(f"{run_dir}: cannot score yet: {'; '.join(problems)}; run the missing shards with "
                        "`idcbench run ... --shard I --num-shards N`")
    model_spec = _model_spec(spec.model)
    info = DistInfo()
    p = Prepared(req, spec, run_dir, dataset, examples, model_spec, resolve_device(device, info), info)
    model = None
    if (run_dir / MODEL_DIR / MODEL_MARKER).exists() and hasattr(model_spec.family, "embed_pairs"):
        model = _load_saved(run_dir / MODEL_DIR, p, what=str(run_dir / MODEL_DIR))
    metrics_out = finalize(p, model, reporter, num_shards=saved.get("num_shards"))
    return RunResult(run_dir, spec, "done", metrics_out)
