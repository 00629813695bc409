"""An example of a model added without forking idcbench: `idcbench run pixel-diff --include examples/own-model ...`.

It looks at the two images only: "no change" when they are (nearly) the same pixels, else one fixed sentence. The
variant `pixel-diff-strict.json` next to it changes its config (configs are data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from idcbench.captioner import Captioner, ModelSpec
from idcbench.data import Pair, load_image
from idcbench.errors import UserError
from idcbench.registry import MODELS

DEFAULTS = {"threshold": 1.0, "changed": "something changed", "unchanged": "no change"}


class PixelDiff(Captioner):
    """'no change' when the mean pixel difference is at most `threshold` (0-255), else the `changed` sentence."""

    name = "pixel-diff"
    trainable = False  # nothing to fit: `idcbench run` captions straight away

    def __init__(self, config: dict[str, Any] | None = None):
        unknown = sorted(set(config or {}) - set(DEFAULTS))
        if unknown:
            raise UserError(f"pixel-diff: unknown config key(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
        super().__init__({**DEFAULTS, **(config or {})})

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        out = []
        for pair in pairs:
            before, after = (np.asarray(load_image(p), dtype=np.float64) for p in (pair.before, pair.after))
            diff = float(np.abs(before - after).mean()) if before.shape == after.shape else float("inf")
            out.append(self.config["changed"] if diff > self.config["threshold"] else self.config["unchanged"])
        return out

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps({"family": self.name, "config": self.config}, indent=2))

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "PixelDiff":
        saved = json.loads((Path(directory) / "config.json").read_text())
        return cls({**saved["config"], **overrides})


MODELS.add("pixel-diff", ModelSpec(PixelDiff, {}), description=(PixelDiff.__doc__ or "").strip())
