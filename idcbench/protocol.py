"""A benchmark's protocol, in one place: how its captions are tokenized and scored (metric set and order, subsets),
how its tables are laid out, what a vision-language model is asked and how long it may answer.

Each dataset loader names its protocols (`Dataset.protocols`, the first is the default), and `eval`, `run`, the
tables, the report and the VLM prompt all read them from there (`protocol_of`). Runs record the protocol they were
scored with; runs of different protocols never share a table.

>>> coco = protocol_of("shapes")
>>> coco.name, coco.primary, [s.key for s in coco.sections]
('coco', 'CIDEr-D', ['types', 'kinds'])
>>> protocol_of("spot-the-diff", "rsicc")
Traceback (most recent call last):
...
idcbench.errors.UserError: spot-the-diff has no protocol 'rsicc' (protocols: coco)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from idcbench.errors import UserError

if TYPE_CHECKING:
    from idcbench.data import Dataset
    from idcbench.metrics.base import Tokenizer

DEFAULT_INSTRUCTION = ("The first image shows a scene before a change and the second image shows the same scene after "
                       "it. In one short sentence, say what changed between the two images.")


@dataclass(frozen=True)
class Section:
    """A table of a benchmark beyond the main one: its `subsets` (present ones, in this order; shown when one is
    present), optional `extra` columns (shown when present) and, with `others`, every subset no section names.
    `all_metrics`: one row per (model, subset) with the metric columns; else one row per model with one column per
    subset, of the primary metric."""

    key: str
    title: str
    subsets: tuple[str, ...]
    extra: tuple[str, ...] = ()
    others: bool = False
    all_metrics: bool = False
    note: str = ""


@dataclass(frozen=True)
class Protocol:
    """How a benchmark is scored and prompted. The default is pycocoevalcap's COCO protocol: PTB tokenizer on the
    text, BLEU-1..4, METEOR, ROUGE-L, CIDEr-D, every subset of the dataset scored as its own corpus."""

    name: str = "coco"
    description: str = ("pycocoevalcap's COCO caption protocol: PTB tokenizer on the text, BLEU-1..4, METEOR, "
                        "ROUGE-L and CIDEr-D, each subset scored as its own corpus")
    metrics: tuple[str, ...] | None = None  # the default metric set; None: `idcbench.metrics.DEFAULT_METRICS`
    primary: str = "CIDEr-D"  # what tables sort by and the per-subset tables show
    sections: tuple[Section, ...] = ()
    # how the report lists the subsets it knows (others follow, sorted): by default change captioning's usual ones,
    # CLEVR-Change's kinds and change types, wherever a dataset has subsets of those names
    subset_order: tuple[str, ...] = ("total", "semantic", "distractor", "color", "material", "add", "drop", "move")
    instruction: str = DEFAULT_INSTRUCTION  # what a vision-language model is asked (the images come first)
    decoding: Mapping[str, Any] = field(default_factory=lambda: {"max_new_tokens": 48})  # VLM answer length

    def tokenizer(self, dataset: "Dataset | None") -> "Tokenizer | None":
        """How captions become the tokens the metrics score; None: pycocoevalcap's PTB tokenizer."""
        return None

    def subsets(self, dataset: "Dataset", split: str) -> dict[str, list[str]]:
        """The scored subsets of a split (name -> ids; ``total`` first): the dataset's own."""
        return dataset.subsets(split)

    def default_metrics(self) -> list[str] | None:
        return list(self.metrics) if self.metrics is not None else None

    def order_subsets(self, names: Sequence[str]) -> list[str]:
        """`names` in `subset_order`, then the others sorted."""
        known = [n for n in self.subset_order if n in names]
        return known + sorted(n for n in names if n not in known)


COCO = Protocol()
_ADDED: dict[str, list[Protocol]] = {}  # dataset name (or scheme, e.g. "pairs") -> protocols added by `register`


def register(dataset: str, protocol: Protocol) -> Protocol:
    """Offer `protocol` for `dataset` (a registered name, or a scheme such as ``pairs`` for every ``pairs:PATH``)
    besides the protocols its loader names, from a plugin or any file, without touching the loader."""
    if protocol.name in (p.name for p in _ADDED.get(dataset, [])):
        raise ValueError(f"{dataset} already has a protocol {protocol.name!r}")
    _ADDED.setdefault(dataset, []).append(protocol)
    return protocol


def protocols_of(dataset: str) -> dict[str, Protocol]:
    """The protocols of a registered dataset, its default first (datasets that name none have COCO's)."""
    from idcbench.registry import DATASETS

    loader = DATASETS.get(dataset) if dataset in DATASETS else None
    found = list(getattr(loader, "protocols", None) or (COCO,))
    found += _ADDED.get(dataset, []) + _ADDED.get(DATASETS.scheme_of(dataset) or "", [])
    return {p.name: p for p in found}


def protocol_of(dataset: str | None, name: str | None = None) -> Protocol:
    """Protocol `name` of `dataset` (None: its default; no dataset: COCO's); an unknown name is a `UserError`."""
    if dataset is None:
        if name not in (None, COCO.name):
            raise UserError(f"--protocol {name}: without --dataset only the coco protocol applies")
        return COCO
    known = protocols_of(dataset)
    if name is None:
        return next(iter(known.values()))
    if name not in known:
        raise UserError(f"{dataset} has no protocol {name!r} (protocols: {', '.join(known)})")
    return known[name]
