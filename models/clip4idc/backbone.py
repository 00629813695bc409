"""Build an open_clip backbone without ever downloading: weights come from a local file or an existing cache.

`--backbone ViT-B-32 --pretrained openai` looks for the file open_clip would have downloaded (the OpenAI URL's file in
``~/.cache/clip`` or ``$IDCBENCH_CLIP_CACHE``, or the Hugging Face hub cache of the tag's ``hf_hub`` repo, read with
``HF_HUB_OFFLINE``); `--pretrained /path/to/file.pt` loads that file; `idc-tiny-vit` + `tiny` reads
``models/tinyclip/weights/``. Anything missing is one `UserError` line saying where to put the file.

>>> resolve_pretrained("ViT-B-32", None) is None
True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from idcbench.errors import UserError



# the config key, as every command spells it (`idcbench run` has no --pretrained option; `caption` takes both)
PRETRAINED_HINT = "give a weights file as the config key pretrained: --config pretrained=/path/to/weights.pt"


def _hf_cached(repo_file: str, cache_dir: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, filename = os.path.split(repo_file)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def resolve_pretrained(backbone: str, pretrained: str | None, cache_dir: str | None = None) -> Path | None:
    """The local file holding `backbone`'s `pretrained` weights; None for random init. Never downloads."""
    if not pretrained:
        return None
    path = Path(str(pretrained)).expanduser()
    if path.is_file():
        return path
    from idcbench.models import tinyclip

    if backbone == tinyclip.MODEL_NAME:
        return tinyclip.pretrained_path(pretrained)  # its errors say how to build the weights or which tags exist
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(backbone, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(backbone)
        raise UserError(
            f"pretrained {pretrained!r}: neither a file nor a known open_clip tag of {backbone} "
            f"(tags: {', '.join(tags) or 'none'}); {PRETRAINED_HINT}"
        )
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return Path(cfg["file"])
    url = cfg.get("url", "")
    clip_cache = Path(os.environ.get("IDCBENCH_CLIP_CACHE", cache_dir or "~/.cache/clip")).expanduser()
    if url and (clip_cache / os.path.basename(url)).is_file():
        return clip_cache / os.path.basename(url)
    if cfg.get("hf_hub"):
        found = _hf_cached(cfg["hf_hub"], cache_dir)
        if found is not None:
            return found
    where = f"{clip_cache / os.path.basename(url)} (from {url})" if url else f"the Hugging Face cache ({cfg.get('hf_hub')})"
    raise UserError(
        f"{backbone} weights {pretrained!r} are not on this machine and idcbench never downloads: put the file at {where}, "
        f"or {PRETRAINED_HINT}"
    )


def tag_quick_gelu(backbone: str, pretrained: str | None) -> bool:
    """True when open_clip says the tag was trained with QuickGELU (OpenAI weights)."""
    if not pretrained or Path(str(pretrained)).is_file():
        return False
    from open_clip.pretrained import get_pretrained_cfg

    return bool(get_pretrained_cfg(backbone, pretrained).get("quick_gelu", False))


def create_clip(backbone: str, pretrained: str | None = None, *, quick_gelu: bool | None = None,
                cache_dir: str | None = None) -> Any:
    """An open_clip CLIP model (fp32, CPU) with the resolved weights loaded, or randomly initialised."""
    import open_clip

    import idcbench.models.tinyclip  # noqa: F401  (registers idc-tiny-vit)

    if backbone not in open_clip.list_models():
        raise UserError(f"unknown open_clip backbone {backbone!r} (e.g. ViT-B-32, ViT-B-16, {idcbench.models.tinyclip.MODEL_NAME})")
    weights = resolve_pretrained(backbone, pretrained, cache_dir)
    if quick_gelu is None:
        quick_gelu = tag_quick_gelu(backbone, pretrained)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.disable(logging.WARNING)  # open_clip logs a warning for every randomly initialised model
    try:
        model = open_clip.create_model(backbone, pretrained=str(weights) if weights else None,
                                       force_quick_gelu=bool(quick_gelu), load_weights=True)
    except RuntimeError as e:
        raise UserError(f"cannot load {backbone} weights from {weights}: {str(e).splitlines()[0]}") from None
    finally:
        logging.disable(logging.NOTSET)
    return model
