"""The model interface: every IDC model (CLIP4IDC and the baselines) is a `Captioner`.

A captioner is built from a config dict (variants are configs, not classes), trained with `fit` when it learns,
captions pairs in batches, and saves to / loads from a directory. Models that embed pairs and texts in one space
(CLIP4IDC stage 1) also implement `RetrievalModel`, and `idcbench run` then scores retrieval R@k too.

>>> from idcbench.registry import MODELS
>>> "clip4idc" in MODELS.names()  # doctest: +SKIP
True
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence, runtime_checkable

from idcbench.data import Dataset, Example, Pair


@dataclass
class FitContext:
    """What `fit` gets besides the data: where to keep resumable state, the seed, the device, progress reporting.

    `workdir` holds the model's training state; `fit` called again with the same workdir continues from the last
    saved state and must end with the same weights as an uninterrupted run. `on_progress(stage, step, total, logs)`
    feeds the CLI's progress bars. `distributed` tells rank / world size under torchrun.
    """

    workdir: Path
    seed: int = 0
    device: str = "cpu"
    on_progress: Callable[[str, int, int, dict[str, float]], None] | None = None
    rank: int = 0
    world_size: int = 1

    def progress(self, stage: str, step: int, total: int, **logs: float) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, step, total, logs)


@dataclass(frozen=True)
class TrainData:
    """What a model may read of its run's dataset before captioning (`Captioner.resolve_config`, `RunContext`): the
    dataset's name and its train split (e.g. k-shot examples), read on first use. The split being captioned is not
    reachable from here; its pairs reach the model only through `caption`, as two images.

    >>> from idcbench.data import Example
    >>> data = TrainData("toy", lambda: [Example("0", Path("b"), Path("a"), ("a change",))])
    >>> data.has_train, [e.id for e in data.examples()], TrainData("toy").has_train
    (True, ['0'], False)
    """

    dataset: str
    load: Callable[[], Sequence[Example]] | None = field(default=None, repr=False)  # None: no train split

    @classmethod
    def of(cls, dataset: Dataset) -> "TrainData":
        has_train = "train" in dataset.splits()
        return cls(dataset.info.name, functools.partial(dataset.examples, "train") if has_train else None)

    @property
    def has_train(self) -> bool:
        return self.load is not None

    def examples(self) -> Sequence[Example]:
        if self.load is None:
            from idcbench.errors import UserError

            raise UserError(f"{self.dataset} has no train split")
        return self.load()


@dataclass(frozen=True)
class RunContext:
    """What a model may use of its run besides the pairs (`Captioner.bind_run`): the run directory (e.g. for a
    write-ahead log of server requests, so a resumed run never asks twice) and the train data (`TrainData`, e.g. the
    in-context examples). `part` names this process's share when several write to one run directory
    (``shard-0-of-4``, ``rank1``; empty for a whole run), so that each can keep its own files."""

    run_dir: Path
    data: TrainData
    part: str = ""


class Caption(str):
    """A caption that also keeps the model's raw answer (before post-processing); the runner writes both. `failed`
    says why a model has no caption for the pair (e.g. a server whose answer stayed empty): the runner scores it as
    the caption it is (empty), records the failure in the run and asks the pair again when the run is repeated.

    >>> c = Caption("the cube moved", raw="The difference is that the cube moved. Anything else?")
    >>> c, c.raw, c.failed
    ('the cube moved', 'The difference is that the cube moved. Anything else?', None)
    """

    raw: str
    failed: str | None

    def __new__(cls, text: str, raw: str | None = None, failed: str | None = None) -> "Caption":
        obj = super().__new__(cls, text)
        obj.raw = text if raw is None else raw
        obj.failed = failed
        return obj


class Captioner(ABC):
    """An image-difference captioner. Subclasses set `name` and accept a config dict."""

    name: str = ""
    # Every config key the family knows, with its default (a dict value is a group of keys, e.g. ``stage2``);
    # `check_config` rejects anything else before any work. None: the family does not declare its keys.
    config_defaults: ClassVar[Mapping[str, Any] | None] = None
    # Config keys that never change a caption (a client's requests in flight, time-outs, retries): recorded in
    # run_spec.json, not hashed, so a run resumed with other values keeps its run directory and what it has done.
    runtime_keys: ClassVar[frozenset[str]] = frozenset()
    trainable: bool = True
    # Set by the runner while it captions a batch: a model that answers pair by pair (a server) calls it with the
    # number of pairs just answered, so that the progress bar moves before the whole batch is back.
    on_answer: Callable[[int], None] | None = None

    def __init__(self, config: Mapping[str, Any] | None = None):
        self.config: dict[str, Any] = self.full_config(config or {})

    @classmethod
    def full_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """`config` on top of every default of the family (groups merged key by key): the whole config a model runs
        with, and what a run hashes (`idcbench.run.request.prepare`). The one place where defaults are merged.

        >>> class Toy(Captioner):
        ...     config_defaults = {"lr": 0.1, "stage2": {"epochs": 1, "lr": 1e-3}}
        >>> Toy.full_config({"stage2": {"lr": 5e-4}})
        {'lr': 0.1, 'stage2': {'epochs': 1, 'lr': 0.0005}}
        """
        return copy.deepcopy(deep_merge(cls.config_defaults or {}, config))

    @classmethod
    def resolve_config(cls, config: dict[str, Any], data: TrainData) -> dict[str, Any]:
        """The run's config with everything else that determines its captions pinned (it is hashed into the run
        spec), e.g. the weights' revision, the prompt text, the chosen in-context examples (from `data`, the
        dataset's name and train split). Called before any work,
        so it is also where a missing weight or key fails; cheap (no weights are loaded). Default: unchanged."""
        return config

    @classmethod
    def trains(cls, config: Mapping[str, Any]) -> bool:
        """Whether a run of this (resolved) config fits the model when no ``--init`` is given. Default: the class's
        `trainable`; a family where it depends on the config (``vlm``'s ``finetune``) overrides this."""
        return bool(cls.trainable)

    def bind_run(self, ctx: RunContext) -> None:
        """Called once before captioning in a run (never by `idcbench caption`). Default: nothing."""

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext) -> None:
        """Train on `train`, select on `val` (never on test). Models that do not learn keep the default."""

    @abstractmethod
    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        """One caption per pair, in order. Deterministic for a fixed model."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything `load` needs into `directory` (config included)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, **overrides: Any) -> "Captioner":
        """Rebuild a captioner saved by `save` (or `export`)."""

    def export(self, directory: Path) -> None:
        """Write the smallest folder `load` reads back with the same captions (what a repository ships, e.g. fp16
        and only what training changed). Default: `save`."""
        self.save(directory)

    def card(self) -> str:
        """One line for `idcbench list models`."""
        return (self.__doc__ or self.name).strip().split("\n")[0]

    def to(self, device: str) -> "Captioner":
        return self


@runtime_checkable
class RetrievalModel(Protocol):
    """A model that embeds pairs and texts in one space (cosine similarity ranks them)."""

    def embed_pairs(self, pairs: Sequence[Pair]) -> Any: ...

    def embed_texts(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class ModelSpec:
    """A registered model variant: the captioner class and the config that defines the variant (configs are data).

    `family_ref` is the class or ``"module:Class"``, imported on first use of `family`: listing models does not
    import torch or open_clip.

    >>> spec = ModelSpec("idcbench.models.baselines.most_frequent:MostFrequent", {})
    >>> spec.family.__name__
    'MostFrequent'
    """

    family_ref: type[Captioner] | str
    config: dict[str, Any]
    description: str = ""

    @property
    def family(self) -> type[Captioner]:
        import pkgutil

        return pkgutil.resolve_name(self.family_ref) if isinstance(self.family_ref, str) else self.family_ref

    def full_config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The family's defaults <- the variant's config <- `overrides` (`Captioner.full_config`)."""
        return self.family.full_config(deep_merge(self.config, overrides or {}))

    def create(self, **overrides: Any) -> Captioner:
        return self.family(self.full_config(overrides))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, merging nested dicts (a variant's ``stage2`` group keeps the keys not overridden).

    >>> deep_merge({"a": 1, "s": {"x": 1, "y": 2}}, {"s": {"y": 3}})
    {'a': 1, 's': {'x': 1, 'y': 3}}
    """
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def check_config(model: str, family: type[Captioner], config: Mapping[str, Any]) -> None:
    """Reject config keys that `family` does not declare in its `config_defaults` (groups checked key by key), with
    "did you mean"; a family without `config_defaults` is not checked.

    >>> class Toy(Captioner):
    ...     config_defaults = {"lr": 0.1, "stage2": {"epochs": 1}}
    >>> check_config("toy", Toy, {"lr": 1, "stage2": {"epoch": 2}})
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: toy: unknown config key 'stage2.epoch'; did you mean 'stage2.epochs'? (stage2 keys: epochs)
    """
    import difflib

    from idcbench.errors import UserError

    def walk(known: Mapping[str, Any], given: Mapping[str, Any], prefix: str) -> None:
        for key, value in given.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
                hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
                where = f"{prefix[:-1]} keys" if prefix else "known keys"
                keys = f"{where}: {', '.join(known)}" if known else f"{model} takes no config keys"
                raise UserError(f"{model}: unknown config key {prefix + key!r}{hint} ({keys})")
            if isinstance(known[key], Mapping) and known[key] and isinstance(value, Mapping):
                walk(known[key], value, f"{prefix}{key}.")

    if family.config_defaults is not None:
        walk(family.config_defaults, config, "")
