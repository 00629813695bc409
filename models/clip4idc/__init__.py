"""CLIP4IDC (Guo, Wang, Laaksonen, AACL-IJCNLP 2022) and its ablations. Importing registers every variant in MODELS.

Variants are JSON configs in ``configs/`` (``name``, ``description`` and config keys; see `captioner.DEFAULTS`):
``clip4idc`` (ViT-B/32, the paper's recipe), ``clip4idc-tiny`` (the 64 px `idc-tiny-vit`, CPU), ``clip4idc-noadapt`` /
``clip4idc-tiny-noadapt`` (stage 2 straight from CLIP weights), ``clip-diff`` / ``clip-diff-tiny`` (frozen CLIP on each
image separately, tokens of before / after / after - before, same decoder and stage-2 recipe).

>>> from idcbench.registry import MODELS
>>> {"clip4idc", "clip4idc-tiny", "clip-diff"} <= set(MODELS.names())
True
"""

from __future__ import annotations

import json
from pathlib import Path

from idcbench.captioner import ModelSpec
from idcbench.models.clip4idc.captioner import DEFAULTS, Clip4IDC
from idcbench.registry import MODELS

CONFIG_DIR = Path(__file__).parent / "configs"

__all__ = ["Clip4IDC", "DEFAULTS", "CONFIG_DIR"]


for _path in sorted(CONFIG_DIR.glob("*.json")):
    _data = json.loads(_path.read_text())
    _cfg = {k: v for k, v in _data.items() if k not in ("name", "description")}
    MODELS.add(_data.get("name", _path.stem), ModelSpec(Clip4IDC, _cfg, _data.get("description", "")),
               description=_data.get("description", ""))
