"""Most-frequent caption: the floor of every table (a model that never looks at the images).

`fit` counts the normalised training references (lower-case, whitespace collapsed, trailing full stops dropped; see
`normalize_caption`) and keeps the mode; ties go to the lexicographically smallest caption. Empty references
(Spot-the-Diff keeps 53 in train, its most common "caption") are not captions and are not counted. `caption` writes that one
caption for every pair: at caption time a model gets the two images of a pair and nothing else, so no tag of a test
pair (kind, change type, scene) can choose among several captions.

>>> from idcbench.data import Example, Pair
>>> train = [Example(str(i), Path("b"), Path("a"), refs, {}) for i, refs in enumerate([
...     ("the cube moved.", "The cube moved"), ("no change",), ("no change",), ("no change",)])]
>>> m = MostFrequent(); m.fit(train, [], None)
>>> m.caption([Pair(Path("b"), Path("a"))] * 2)
['no change', 'no change']
>>> m.fit(train + [Example("e", Path("b"), Path("a"), ("", " ", "."), {})] * 2, [], None); m.overall
'no change'
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from idcbench.captioner import Captioner, FitContext
from idcbench.data import Example, Pair
from idcbench.errors import UserError
from idcbench.files import read_json
from idcbench.models.baselines.text import normalize_caption


def mode(counts: Counter) -> str:
    """The most frequent caption; ties to the lexicographically smallest."""
    if not counts:
        return ""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


class MostFrequent(Captioner):
    """Most-frequent training caption, the same for every pair: the no-image floor."""

    name = "most-frequent"
    config_defaults: dict[str, Any] = {}

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.overall: str = ""
        self.count: int = 0

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext | None) -> None:
        if not train:
            raise UserError("most-frequent: the training split is empty")
        counts: Counter = Counter(normalize_caption(r) for ex in train for r in ex.references)
        counts.pop("", None)  # an empty reference is no caption to predict
        if not counts:
            raise UserError("most-frequent: every training reference is empty; there is no caption to predict")
        self.overall = mode(counts)
        self.count = counts[self.overall]
        if ctx is not None:
            ctx.progress("count", len(train), len(train))

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        return [self.overall] * len(pairs)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"family": self.name, "config": self.config}, indent=2))
        (directory / "state.json").write_text(json.dumps({"overall": self.overall, "count": self.count}, indent=2))

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "MostFrequent":
        directory = Path(directory)
        cfg = read_json(directory / "config.json", what="model config")
        state = read_json(directory / "state.json", what="most-frequent state")
        model = cls({**cfg.get("config", {}), **overrides})
        model.overall, model.count = state["overall"], int(state.get("count", 0))
        return model
