"""Most-frequent caption: the floor of every table (a model that never looks at the images).

`fit` counts the normalised training references (lower-case, whitespace collapsed, trailing full stops dropped; see
`normalize_caption`) and keeps the mode; ties go to the lexicographically smallest caption. When training examples
carry ``tags["kind"]`` (CLEVR-Change's ``semantic`` / ``distractor``), a mode is also kept per kind. The change type
(``tags["type"]``) is never used.

`caption` accepts `Example`s or `Pair`s. An `Example` whose kind has its own mode gets that mode; everything else
(a plain `Pair`, an unknown kind, data without kinds) gets the overall mode. The kind is read only from the tags, never
derived from file names.

>>> from idcbench.data import Example
>>> train = [Example(str(i), Path("b"), Path("a"), refs, {"kind": k}) for i, (refs, k) in enumerate([
...     (("the cube moved.", "The cube moved"), "semantic"), (("no change",), "distractor"),
...     (("no change",), "distractor"), (("no change",), "distractor")])]
>>> m = MostFrequent(); m.fit(train, [], None)
>>> m.caption([train[0], train[0].pair])
['the cube moved', 'no change']
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from idcbench.captioner import Captioner, FitContext
from idcbench.data import Example
from idcbench.errors import UserError, read_json
from idcbench.models.baselines.text import normalize_caption


def mode(counts: Counter) -> str:
    """The most frequent caption; ties to the lexicographically smallest."""
    if not counts:
        return ""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


class MostFrequent(Captioner):
    """Most-frequent training caption (per semantic/distractor kind when known): the no-image floor."""

    name = "most-frequent"
    accepts_examples = True  # caption() reads tags["kind"] of Examples; Pairs get the overall mode

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__({"per_kind": True, **(config or {})})
        self.overall: str = ""
        self.by_kind: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext | None) -> None:
        if not train:
            raise UserError("most-frequent: the training split is empty")
        overall: Counter = Counter()
        kinds: dict[str, Counter] = {}
        for ex in train:
            refs = [normalize_caption(r) for r in ex.references]
            overall.update(refs)
            kind = ex.tags.get("kind") if ex.tags else None
            if kind is not None:
                kinds.setdefault(kind, Counter()).update(refs)
        self.overall = mode(overall)
        self.by_kind = {k: mode(c) for k, c in sorted(kinds.items())} if self.config["per_kind"] else {}
        self.counts = {"overall": overall[self.overall], **{k: kinds[k][v] for k, v in self.by_kind.items()}}
        if ctx is not None:
            ctx.progress("count", len(train), len(train))

    def caption(self, pairs: Sequence[Any]) -> list[str]:
        out = []
        for item in pairs:
            tags = getattr(item, "tags", None) or {}
            out.append(self.by_kind.get(tags.get("kind"), self.overall))
        return out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"family": self.name, "config": self.config}, indent=2))
        state = {"overall": self.overall, "by_kind": self.by_kind, "counts": self.counts}
        (directory / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "MostFrequent":
        directory = Path(directory)
        cfg = read_json(directory / "config.json", what="model config")
        state = read_json(directory / "state.json", what="most-frequent state")
        model = cls({**cfg.get("config", {}), **overrides})
        model.overall, model.by_kind, model.counts = state["overall"], state["by_kind"], state.get("counts", {})
        return model
