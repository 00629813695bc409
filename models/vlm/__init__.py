"""Vision-language models (registration happens on import): `vlm`, any transformers image-text-to-text model, and
`openai`, any OpenAI-compatible chat-completions server. Variants are the JSON files in ``configs/`` (Qwen2.5-VL,
Qwen3-VL, SmolVLM2, LLaVA-OneVision, InternVL3, Gemma 3; each notes how its chat template places several images);
prompts and post-processing rules are data in ``prompts/``.

>>> from idcbench.registry import MODELS
>>> {"vlm", "openai", "qwen2.5-vl-3b", "gemma3-4b"} <= set(MODELS.names())
True
"""

from __future__ import annotations

from pathlib import Path

from idcbench.factory import register_variants

CONFIG_DIR = Path(__file__).parent / "configs"
# family -> "module:Class", imported when a variant is built (transformers / httpx2 are imported on first use)
FAMILIES: dict[str, str] = {"vlm": "idcbench.models.vlm.transformers_vlm:TransformersVLM",
                            "openai": "idcbench.models.vlm.chat_server:OpenAICompatible"}

register_variants(CONFIG_DIR, FAMILIES)

__all__ = ["CONFIG_DIR", "FAMILIES"]
