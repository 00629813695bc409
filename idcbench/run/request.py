"""What a run was asked to do, resolved before any work: `RunRequest` -> `prepare` -> `Prepared`.

Everything a user can get wrong (names, data, split, checkpoint path, options) fails here, before a run directory
exists or a model is built.

>>> parse_config(["epochs=2", "lr=1e-4", "name=vit", "flags=[1, 2]", "fp16=true"])
{'epochs': 2, 'lr': 0.0001, 'name': 'vit', 'flags': [1, 2], 'fp16': True}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from idcbench.captioner import ModelSpec, TrainData, check_config, deep_merge
from idcbench.data import Dataset, Example, load_dataset
from idcbench.distributed import DistInfo, dist_info
from idcbench.errors import UserError
from idcbench.protocol import COCO, Protocol, protocol_of
from idcbench.scoring import resolve_metrics
from idcbench.spec import RunSpec, canonical_json, dataset_manifest, decoding_settings, manifest_hash
from idcbench.files import file_sha256


# ----------------------------------------------------------------------------------------------------------- inputs
@dataclass
class RunRequest:
    """What `idcbench run` was asked to do (CLI options, unresolved)."""

    model: str
    dataset: str
    data_root: str | Path | None = None
    split: str = "test"
    init: str | Path | None = None
    train: bool = False  # with `init`: train starting from that checkpoint (without it, a model that learns trains)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    batch_size: int = 32
    limit: int | None = None
    runs_dir: str | Path = "runs"
    force: bool = False
    metrics: list[str] | None = None  # None: the protocol's metric set
    protocol: str | None = None  # None: the dataset's default protocol
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


def model_spec_of(name: str) -> ModelSpec:
    """The registered variant called `name` (an unknown name: a `UserError` with "did you mean")."""
    from idcbench.registry import MODELS

    return MODELS.get(name)


def split_examples(dataset: Dataset, split: str, limit: int | None) -> list[Example]:
    """The examples of `split` (an unknown split: a `UserError` naming the dataset's splits), the first `limit`."""
    dataset.check_split(split)
    examples = list(dataset.examples(split))
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit {limit}: must be at least 1")
        examples = examples[:limit]
    if not examples:
        raise UserError(f"{dataset.info.name}: split {split!r} has no examples")
    return examples


def open_dataset(name: str, root: str | Path | None) -> Dataset:
    """`load_dataset`, with a missing folder or file as one line that points at ``--data-root``."""
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
    metrics: list[str] = field(default_factory=list)  # resolved names (`idcbench.scoring.resolve_metrics`)
    runtime: dict[str, Any] = field(default_factory=dict)  # the family's `runtime_keys`: used, recorded, not hashed
    protocol: Protocol = COCO  # how the dataset is scored (`idcbench.protocol`)


def prepare(req: RunRequest, info: DistInfo | None = None, device: str | None = None) -> Prepared:
    """Resolve names, data and checkpoint into a frozen `RunSpec` and its run directory. Builds no model."""
    info = info or dist_info()
    if req.batch_size < 1:
        raise UserError(f"--batch-size {req.batch_size}: must be at least 1")
    if req.limit is not None and req.limit < 1:
        raise UserError(f"--limit {req.limit}: must be at least 1")
    model_spec = model_spec_of(req.model)  # unknown model: "did you mean"
    protocol = protocol_of(req.dataset, req.protocol)  # unknown dataset or protocol: one line, before the data
    metrics = resolve_metrics(req.metrics if req.metrics is not None else protocol.default_metrics())
    check_config(req.model, model_spec.family, deep_merge(model_spec.config, req.config))
    # every default of the family too: a changed default is a new run (the whole config is hashed)
    config = json.loads(canonical_json(model_spec.full_config(req.config)))
    trainable = model_spec.family.trains(config)  # e.g. `vlm` learns only with a `finetune` recipe
    if req.train and not trainable:
        raise UserError(f"--train: {req.model} does not learn from data with this config (nothing to train); "
                        "drop --train")
    if req.init is not None and not Path(req.init).exists():
        raise UserError(f"--init {req.init}: checkpoint not found")
    # Only now the data: loading may be work (shapes is generated on first use).
    dataset = open_dataset(req.dataset, req.data_root)
    examples = split_examples(dataset, req.split, req.limit)
    # the family pins what else determines its captions (weights revision, prompt, shots): hashed with the config
    config = json.loads(canonical_json(model_spec.family.resolve_config(config, TrainData.of(dataset))))
    runtime = {k: config.pop(k) for k in sorted(model_spec.family.runtime_keys) if k in config}
    checkpoint = None if req.init is None else file_sha256(Path(req.init))
    # a model that learns trains unless --init gives its weights; --init with --train fine-tunes from them
    train = trainable and (req.init is None or req.train)
    train_manifest = None
    if train:
        if "train" not in dataset.splits():
            raise UserError(f"{req.dataset} has no train split to train {req.model} on; pass --init CKPT")
        train_manifest = manifest_hash(fit_examples(dataset, "train") + fit_examples(dataset, "val"))
    spec = RunSpec(
        model=req.model, config=config, dataset=req.dataset, split=req.split, manifest=dataset_manifest(dataset, examples),
        protocol=protocol.name,
        checkpoint=checkpoint, train=train, train_manifest=train_manifest, decoding=decoding_settings(config),
        seed=req.seed, limit=req.limit,
    )
    device = device or resolve_device(req.device, info)
    return Prepared(req, spec, spec.run_dir(req.runs_dir), dataset, examples, model_spec, device, info, metrics,
                    runtime, protocol)


def fit_examples(dataset: Dataset, split: str) -> list[Example]:
    """The examples of a split used for fitting (train, val); none when the dataset lacks it."""
    return list(dataset.examples(split)) if split in dataset.splits() else []


def reopen(run_dir: Path, *, data_root: str | Path | None = None, metrics: list[str] | None = None,
           device: str = "auto", batch_size: int | None = None, reporter: Any = None) -> Prepared:
    """The `Prepared` run of an existing run directory, from its saved spec (nothing is resolved again: the spec is
    what the run was): for `idcbench score RUN_DIR`. Its data are found again (the recorded root, `data_root`) and must
    be the ones the run captioned (the manifest hash)."""
    from idcbench import rundir
    from idcbench.data import recorded_root
    from idcbench.distributed import DistInfo

    saved = rundir.read_spec(run_dir)
    if not saved:
        raise UserError(f"{run_dir}: not a run directory (no {rundir.SPEC}); `idcbench run` creates one")
    spec = RunSpec.from_dict(saved["spec"])
    if data_root is None:
        data_root, note = recorded_root(spec.dataset, saved.get("data_root"))
        if note and reporter is not None:
            reporter.message(note)
    req = RunRequest(model=spec.model, dataset=spec.dataset, data_root=data_root, protocol=spec.protocol,
                     split=spec.split, config={}, seed=spec.seed, device=device,
                     batch_size=batch_size or saved.get("batch_size") or 32, limit=spec.limit,
                     runs_dir=run_dir.parents[2], metrics=metrics if metrics is not None else saved.get("metrics"))
    protocol = protocol_of(spec.dataset, spec.protocol)
    names = resolve_metrics(req.metrics if req.metrics is not None else protocol.default_metrics())
    dataset = open_dataset(spec.dataset, req.data_root)
    examples = split_examples(dataset, spec.split, spec.limit)
    if dataset_manifest(dataset, examples) != spec.manifest:
        raise UserError(f"{run_dir}: the {spec.dataset} {spec.split} examples under {dataset.root} differ from the ones "
                        "this run captioned (manifest hash); point --data-root at the same data")
    info = DistInfo()
    return Prepared(req, spec, run_dir, dataset, examples, model_spec_of(spec.model), resolve_device(device, info),
                    info, names, dict(saved.get("runtime_config") or {}), protocol)
