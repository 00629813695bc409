"""`vlm`: any transformers image-text-to-text model, through ``AutoProcessor`` + ``AutoModelForImageTextToText``.

The model's own chat template renders each pair's messages (`prompting.conversation`: before image, after image,
instruction; k-shot turns first). A batch is one left-padded tensor and one greedy ``generate`` call with
``max_new_tokens`` (default 48). bf16 on CUDA, float32 on CPU (``dtype`` overrides); ``device_map`` (e.g. ``auto``
for models larger than one GPU) and ``attn_implementation`` (``sdpa``, ``flash_attention_2``, ...) go to
``from_pretrained``; ``processor_kwargs`` to ``AutoProcessor.from_pretrained`` (e.g. Qwen's ``max_pixels``),
``chat_template_kwargs`` to the template.

Weights are read from a local folder or the local Hugging Face cache only (`weights.resolve_weights`); the run spec
pins ``weights_revision`` (snapshot commit or folder fingerprint), and a run whose weights changed since is refused.

>>> TransformersVLM({}).card()
'Any transformers image-text-to-text model (its own chat template, greedy, batched with left padding).'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from idcbench.captioner import TrainData
from idcbench.data import load_image
from idcbench.errors import UserError
from idcbench.models.vlm.base import PROMPT_DEFAULTS, PromptedCaptioner
from idcbench.models.vlm.weights import resolve_weights

DEFAULTS: dict[str, Any] = {
    **PROMPT_DEFAULTS,
    "model": None,  # a local model folder or a Hugging Face repo id (already in the local cache)
    "revision": "main",  # branch, tag or commit of a repo id
    "weights_revision": None,  # pinned by resolve_config: snapshot commit or folder fingerprint
    "max_new_tokens": 48,
    "dtype": "auto",  # auto: bfloat16 on CUDA, float32 on CPU; or bfloat16 / float16 / float32
    "device_map": None,  # None: the run's --device; "auto" spreads a large model over the visible GPUs
    "attn_implementation": None,
    "processor_kwargs": {},
    "chat_template_kwargs": {},
}
_DTYPES = ("auto", "bfloat16", "float16", "float32")


def _pil_part(path: Path) -> dict[str, Any]:
    return {"type": "image", "image": load_image(path)}


class TransformersVLM(PromptedCaptioner):
    """Any transformers image-text-to-text model (its own chat template, greedy, batched with left padding)."""

    name = "vlm"
    family = "vlm"
    config_defaults = DEFAULTS
    image_part = staticmethod(_pil_part)

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        if self.config["dtype"] not in _DTYPES:
            raise UserError(f"vlm: dtype={self.config['dtype']!r}: choose one of {', '.join(_DTYPES)}")
        if int(self.config["max_new_tokens"]) < 1:
            raise UserError(f"vlm: max_new_tokens={self.config['max_new_tokens']}: must be at least 1")
        self.device = "cpu"
        self._model: Any = None
        self._processor: Any = None

    def _require_model(self) -> str:
        if not self.config.get("model"):
            raise UserError("vlm: no model given; pass --config model=/path/to/model/folder or a Hugging Face repo "
                            "id, or use a variant (idcbench list models)")
        return str(self.config["model"])

    @classmethod
    def resolve_config(cls, config: dict[str, Any], data: TrainData) -> dict[str, Any]:
        out = super().resolve_config(config, data)
        model = cls(out)._require_model()
        _, revision = resolve_weights(model, out.get("revision"))
        if out.get("weights_revision") not in (None, revision):
            raise UserError(f"model={model}: weights_revision={out['weights_revision']} is pinned but the local "
                            f"weights are at {revision}; place that revision or drop weights_revision")
        out["weights_revision"] = revision
        return out

    def to(self, device: str) -> "TransformersVLM":
        self.device = device
        if self._model is not None and self.config["device_map"] is None:
            self._model.to(device)
        return self

    # --------------------------------------------------------------------------------------------------- weights
    def _load(self) -> None:
        import torch
        import transformers
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model_id = self._require_model()
        pinned = self.config["weights_revision"]
        folder, revision = resolve_weights(model_id, pinned or self.config["revision"])
        if pinned and revision != pinned:
            raise UserError(f"model={model_id}: the weights changed since this run was set up (revision {pinned}, "
                            f"now {revision}); restore them, or start a new run with --force")
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        dtype = self.config["dtype"]
        if dtype == "auto":
            on_gpu = str(self.device).startswith("cuda") or self.config["device_map"] is not None
            dtype = "bfloat16" if on_gpu else "float32"
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "local_files_only": True}
        for key in ("device_map", "attn_implementation"):
            if self.config[key] is not None:
                kwargs[key] = self.config[key]
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True, **self.config["processor_kwargs"])
            model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as e:
            first = " ".join(str(e).split())[:300]
            raise UserError(f"model={model_id}: {folder} does not load as an image-text-to-text model "
                            f"({type(e).__name__}: {first})") from None
        if self.config["device_map"] is None:
            model.to(self.device)
        model.eval()
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._processor = model, processor

    # ---------------------------------------------------------------------------------------------------- answer
    def answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        import torch

        if self._model is None:
            self._load()
        model, processor = self._model, self._processor
        inputs = processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True, "padding_side": "left"}, **self.config["chat_template_kwargs"],
        ).to(model.device, dtype=model.dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=int(self.config["max_new_tokens"]), do_sample=False,
                                 num_beams=1, pad_token_id=processor.tokenizer.pad_token_id)
        return processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
