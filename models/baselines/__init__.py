"""Baselines beside CLIP4IDC (registration happens on import): the floor, retrieval, and DUDA.

Registered models (variants are the JSON files in ``configs/``; keys there override the family defaults):

- ``most-frequent``: the most frequent training caption, per semantic/distractor kind when the data has kinds.
- ``nearest-neighbour`` (alias ``nearest-neighbor``): k-NN on frozen CLIP ViT-B/32 pair features, CIDEr-D consensus;
  ``nearest-neighbour-tiny`` (alias ``nearest-neighbor-tiny``): the same on the miniature CLIP, for CPU and `shapes`.
- ``duda``: DUDA (Park et al., ICCV 2019) with the paper's sizes on CLIP RN101 layer3 grids;
  ``duda-tiny``: a small DUDA on the miniature CLIP, for CPU and `shapes`.

>>> from idcbench.captioner import create_model
>>> create_model("most-frequent").card()
'Most-frequent training caption (per semantic/distractor kind when known): the no-image floor.'
"""

from __future__ import annotations

import json
from pathlib import Path

from typing import Any

from idcbench.captioner import ModelSpec
from idcbench.registry import MODELS

CONFIG_DIR = Path(__file__).parent / "configs"
# family -> "module:Class", imported when a variant is built (DUDA and nearest-neighbour need torch and open_clip)
FAMILIES: dict[str, str] = {"most-frequent": "idcbench.models.baselines.most_frequent:MostFrequent",
                            "nearest-neighbour": "idcbench.models.baselines.nearest_neighbour:NearestNeighbour",
                            "duda": "idcbench.models.baselines.duda:DUDA"}


def __getattr__(name: str) -> Any:
    for ref in FAMILIES.values():
        if ref.endswith(f":{name}"):
            return ModelSpec(ref, {}).family
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register() -> None:
    for path in sorted(CONFIG_DIR.glob("*.json")):
        spec = json.loads(path.read_text())
        if spec["family"] not in FAMILIES:
            raise ValueError(f"{path}: unknown family {spec['family']!r} (known: {', '.join(FAMILIES)})")
        if not spec.get("description"):
            raise ValueError(f"{path}: every variant needs a description (`idcbench list models` shows it)")
        MODELS.add(path.stem, ModelSpec(FAMILIES[spec["family"]], dict(spec.get("config", {})), spec["description"]),
                   description=spec["description"], aliases=tuple(spec.get("aliases", ())))


_register()

__all__ = ["DUDA", "MostFrequent", "NearestNeighbour", "FAMILIES", "CONFIG_DIR"]
