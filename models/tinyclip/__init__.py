"""The miniature CLIP shipped with idcbench: an open_clip model config (`idc-tiny-vit`, 64 px) and its `tiny` weights.

Importing this package registers the config with open_clip, so ``open_clip.create_model("idc-tiny-vit")`` works.

>>> import open_clip, idcbench.models.tinyclip as t
>>> t.MODEL_NAME in open_clip.list_models()
True
"""

from __future__ import annotations

from pathlib import Path

import open_clip

MODEL_NAME = "idc-tiny-vit"
PRETRAINED_TAG = "tiny"
CONFIG_DIR = Path(__file__).parent / "configs"
WEIGHTS_DIR = Path(__file__).parent / "weights"

open_clip.add_model_config(CONFIG_DIR / f"{MODEL_NAME}.json")
