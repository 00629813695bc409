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

from typing import Any

from idcbench.captioner import ModelSpec
from idcbench.registry import MODELS

CONFIG_DIR = Path(__file__).parent / "configs"
FAMILY = "idcbench.models.clip4idc.captioner:Clip4IDC"  # imported when a variant is built (torch, open_clip)

__all__ = ["Clip4IDC", "DEFAULTS", "CONFIG_DIR"]


def __getattr__(name: str) -> Any:
    if name in ("Clip4IDC", "DEFAULTS"):
        from idcbench.models.clip4idc import captioner

        return getattr(captioner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _path in sorted(CONFIG_DIR.glob("*.json")):
    _data = json.loads(_path.read_text())
    _cfg = {k: v for k, v in _data.items() if k not in ("name", "description")}
    MODELS.add(_data.get("name", _path.stem), ModelSpec(FAMILY, _cfg, _data.get("description", "")),
               description=_data.get("description", ""))
