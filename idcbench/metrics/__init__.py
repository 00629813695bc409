"""Caption metrics: each is one `Metric` object in `idcbench.registry.METRICS` (see `idcbench.metrics.base`).

Importing this package imports every module in it, and each registers its metrics: a new metric is a new file here
(or a `register` call in a plugin or a test). Names are looked up in any case, with or without ``-`` / ``_``
(``cider``, ``Bleu_4``, ``rouge``); ``bleu`` means BLEU-1..4 and ``BERTScore[<model>]`` a BERTScore with that model.
Values are on pycocoevalcap's 0-1 scale (CIDEr-D as is); reports show them x100.

>>> get("cider").name, get("Bleu_4").name, get("BERTScore").name
('CIDEr-D', 'BLEU-4', 'BERTScore[all-MiniLM-L6-v2]')
>>> resolve_metrics(["CIDEr", "BLEU"])
['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'CIDEr-D']
>>> too_small("CIDEr-D", 1) is not None, too_small("CIDEr-D", 2), too_small("BLEU-4", 1)
(True, None, None)
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Sequence

from idcbench.errors import UserError
from idcbench.metrics.base import Corpus, Metric, MetricUnavailable, Scores, get, register
from idcbench.registry import METRICS

__all__ = ["Corpus", "Metric", "MetricUnavailable", "Scores", "register", "get", "resolve", "resolve_metrics",
           "canonical_name", "metric_name", "too_small", "DEFAULT_METRICS", "GROUPS"]

# names that stand for several metrics (folded: lower case, no "-", "_" or spaces)
_BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
GROUPS: dict[str, tuple[str, ...]] = {"bleu": _BLEU, "bleun": _BLEU}


def canonical_name(name: str) -> str | None:
    """The registered metric `name` means, or None."""
    return get(name).name if name in METRICS else None


def metric_name(name: str) -> str:
    """The registered metric `name` means; unknown: a `UserError` with "did you mean"."""
    return get(name).name


def resolve(names: Sequence[str] | None) -> list[Metric]:
    """The metrics of a ``--metrics`` list (comma-separated or repeated; any case; ``bleu`` = BLEU-1..4,
    ``default``/``coco`` = the default set; None: the default set), with the metrics they are computed from, in
    table order. Every command resolves its metric names here."""
    if names is None:
        return [get(n) for n in DEFAULT_METRICS]
    out: dict[str, Metric] = {}
    for raw in names:
        for name in (n.strip() for n in str(raw).split(",")):
            if not name:
                continue
            key = "".join(c for c in name.lower() if c not in "-_ ")
            group = DEFAULT_METRICS if key in ("default", "coco") else GROUPS.get(key)
            for metric in [get(n) for n in group] if group else [get(name)]:
                for needed in (*metric.requires, metric.name):
                    out.setdefault(needed, get(needed) if needed != metric.name else metric)
    if not out:
        raise UserError(f"--metrics {','.join(map(str, names))!r}: no metric names; give e.g. --metrics CIDEr-D,BLEU "
                        "(or leave it out for the default set)")
    return sorted(out.values(), key=lambda m: m.order)


def resolve_metrics(names: Sequence[str] | None) -> list[str]:
    """The names of `resolve(names)`.

    >>> resolve_metrics(["bleu,meteor,rouge,cider", "spice"])
    ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr-D', 'SPICE']
    """
    return [m.name for m in resolve(names)]


def too_small(metric: str, n: int | None) -> str | None:
    """Why `n` examples are too few to score `metric` on (one sentence), or None when they are enough (or `metric` is
    unknown). Tables show such a score as a mark with this footnote, never as the number.

    >>> print(too_small("cider", 1))
    CIDEr-D needs at least 2 examples: its n-gram weights are idf = log(N / df) over the N examples scored \
together, so with N = 1 every n-gram has df = N, every weight is 0 and any caption scores 0
    """
    return get(metric).too_small(n) if metric in METRICS else None


def _fold(name: str) -> str:
    """How metric names are compared: any case, without ``-``, ``_`` and spaces (a ``[model]`` part as written)."""
    base, bracket, rest = name.partition("[")
    return "".join(c for c in base.lower() if c not in "-_ ") + bracket + rest


METRICS.fold = _fold
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in ("base", "reference"):
        importlib.import_module(f"{__name__}.{_module.name}")

# the COCO caption metrics of every IDC paper (pycocoevalcap's set without SPICE, which needs CoreNLP)
DEFAULT_METRICS: tuple[str, ...] = tuple(m.name for m in sorted(
    (METRICS.get(n) for n in METRICS.names()), key=lambda m: m.order) if m.default)
