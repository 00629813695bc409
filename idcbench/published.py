"""Published results of IDC methods, shipped as data (`idcbench/data/published.json`) with their sources.

Leaderboards show them beside measured rows, always labelled "published": they differ in backbone, training data
and sometimes scorer, so they are context, not entries of the measured ranking. Values are x100.

>>> rows = published("clevr-change")
>>> [r.method for r in rows][:2]
['DUDA', 'M-VAM']
>>> rows[0].value("CIDEr-D"), rows[0].value("CIDEr-D", "color"), rows[0].value("ROUGE-L")
(112.3, 120.4, None)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping


@dataclass(frozen=True)
class PublishedRow:
    """One method's reported numbers on one dataset: subset -> metric -> value x100 (None = not reported)."""

    dataset: str
    method: str
    venue: str
    source: str
    subsets: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    note: str = ""

    @property
    def label(self) -> str:
        """``method (venue)``, as shown in tables."""
        return f"{self.method} ({self.venue})" if self.venue else self.method

    def value(self, metric: str, subset: str = "total") -> float | None:
        return self.subsets.get(subset, {}).get(metric)


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("idcbench").joinpath("data/published.json").read_text(encoding="utf-8")
    return json.loads(text)


def dataset_protocol(dataset: str) -> str:
    """The protocol the published numbers of `dataset` follow (split, number of pairs), or ''."""
    return _data()["datasets"].get(dataset, {}).get("protocol", "")


def published(dataset: str) -> list[PublishedRow]:
    """Published rows of `dataset` in the order of the source table; [] for datasets without any (e.g. `shapes`)."""
    entry = _data()["datasets"].get(dataset)
    if entry is None:
        return []
    return [PublishedRow(dataset=dataset, method=r["method"], venue=r.get("venue", ""), source=r["source"],
                         subsets=r["subsets"], note=r.get("note", "")) for r in entry["rows"]]
