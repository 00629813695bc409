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

from idcbench.captioner import Captioner, ModelSpec
from idcbench.models.baselines.duda import DUDA
from idcbench.models.baselines.most_frequent import MostFrequent
from idcbench.models.baselines.nearest_neighbour import NearestNeighbour
from idcbench.registry import MODELS

CONFIG_DIR = Path(__file__).parent / "configs"
FAMILIES: dict[str, type[Captioner]] = {"most-frequent": MostFrequent, "nearest-neighbour": NearestNeighbour,
                                        "duda": DUDA}


def _register() -> None:
    for path in sorted(CONFIG_DIR.glob("*.json")):
        spec = json.loads(path.read_text())
        family = FAMILIES[spec["family"]]
        description = spec.get("description") or family.__doc__.strip().split("\n")[0]
        MODELS.add(path.stem, ModelSpec(family, dict(spec.get("config", {})), description), description=description,
                   aliases=tuple(spec.get("aliases", ())))


_register()

__all__ = ["DUDA", "MostFrequent", "NearestNeighbour", "FAMILIES", "CONFIG_DIR"]
