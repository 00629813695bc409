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

from pathlib import Path

from idcbench.factory import register_variants

CONFIG_DIR = Path(__file__).parent / "configs"
# imported when a variant is built (torch, open_clip); the class and DEFAULTS live in `.captioner`
FAMILIES = {"clip4idc": "idcbench.models.clip4idc.captioner:Clip4IDC"}

register_variants(CONFIG_DIR, FAMILIES, default_family="clip4idc")

__all__ = ["CONFIG_DIR", "FAMILIES"]
