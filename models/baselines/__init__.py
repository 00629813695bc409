"""Baselines beside CLIP4IDC (registration happens on import): the floor, retrieval, and DUDA.

Registered models (variants are the JSON files in ``configs/``; keys there override the family defaults):

- ``most-frequent``: the most frequent training caption, the same for every pair.
- ``nearest-neighbour`` (alias ``nearest-neighbor``): k-NN on frozen CLIP ViT-B/32 pair features, CIDEr-D consensus;
  ``nearest-neighbour-tiny`` (alias ``nearest-neighbor-tiny``): the same on the miniature CLIP, for CPU and `shapes`.
- ``duda``: DUDA (Park et al., ICCV 2019) with the paper's sizes on CLIP RN101 layer3 grids;
  ``duda-tiny``: a small DUDA on the miniature CLIP, for CPU and `shapes`.

>>> from idcbench.factory import create_model
>>> create_model("most-frequent").card()
'Most-frequent training caption, the same for every pair: the no-image floor.'
"""

from __future__ import annotations

from pathlib import Path

from idcbench.factory import register_variants

CONFIG_DIR = Path(__file__).parent / "configs"
# family -> "module:Class", imported when a variant is built (DUDA and nearest-neighbour need torch and open_clip)
FAMILIES: dict[str, str] = {"most-frequent": "idcbench.models.baselines.most_frequent:MostFrequent",
                            "nearest-neighbour": "idcbench.models.baselines.nearest_neighbour:NearestNeighbour",
                            "duda": "idcbench.models.baselines.duda:DUDA"}

register_variants(CONFIG_DIR, FAMILIES)

__all__ = ["FAMILIES", "CONFIG_DIR"]
