"""`vlm`: any transformers image-text-to-text model, through ``AutoProcessor`` + ``AutoModelForImageTextToText``;
zero-shot, or fine-tuned on the run's train split (LoRA or full, `finetune`).

The model's own chat template renders each pair's messages (`prompting.conversation`: before image, after image,
instruction; k-shot turns first). A batch is one left-padded tensor and one ``generate`` call. Decoding is data:
``num_beams`` (1: greedy), ``max_new_tokens`` (48), ``min_new_tokens``, ``repetition_penalty``, ``length_penalty``
(beam search only), hashed and listed in the run spec's ``decoding``. bf16 on CUDA, float32 on CPU (``dtype``
overrides); ``device_map`` (e.g. ``auto`` for models larger than one GPU) and ``attn_implementation`` (``sdpa``,
``flash_attention_2``, ...) go to ``from_pretrained``; ``processor_kwargs`` to ``AutoProcessor.from_pretrained``
(e.g. Qwen's ``max_pixels``), ``chat_template_kwargs`` to the template.

``finetune`` (null: zero-shot) makes the family trainable: ``idcbench run`` fits it (`finetune.fit`: recipe keys in
`recipe`), saves the adapter in PEFT's format (or the full weights) into the run's ``model/`` (`adapters`), and
captions with it; ``--init DIR`` loads such a folder or any PEFT adapter onto the base named by ``model``.
``merge_lora`` folds a loaded adapter into the weights (faster captions, rounded once). ``micro_batch_size``
(training and validation batches) and ``gradient_checkpointing`` are memory knobs: recorded, not hashed.

Weights are read from a local folder or the local Hugging Face cache only (`weights.resolve_weights`); the run spec
pins ``weights_revision`` (snapshot commit or folder fingerprint), and a run whose weights changed since is refused.

>>> TransformersVLM({}).card()
'Any transformers image-text-to-text model (its own chat template, greedy or beam search, zero-shot or fine-tuned).'
>>> TransformersVLM.trains({"finetune": None}), TransformersVLM.trains({"finetune": "lora"})
(False, True)
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from idcbench.captioner import FitContext, TrainData, deep_merge
from idcbench.data import Example, load_image
from idcbench.errors import UserError
from idcbench.models.vlm.adapters import FULL_DIR, adapter_base, attach_adapter, kind_of, save_finetuned
from idcbench.models.vlm.base import CONFIG_FILE, PROMPT_DEFAULTS, PromptedCaptioner
from idcbench.models.vlm.collate import prompt_batch
from idcbench.models.vlm.recipe import LORA_DEFAULTS, TRAIN_DEFAULTS, apply_recipe, check_recipe
from idcbench.models.vlm.weights import resolve_weights

GREEDY: dict[str, Any] = {"num_beams": 1, "min_new_tokens": 0, "repetition_penalty": 1.0, "length_penalty": 1.0}
DEFAULTS: dict[str, Any] = {
    **PROMPT_DEFAULTS,
    "model": None,  # a local model folder or a Hugging Face repo id (already in the local cache)
    "revision": "main",  # branch, tag or commit of a repo id
    "weights_revision": None,  # pinned by resolve_config: snapshot commit or folder fingerprint
    # decoding (hashed, and listed in the run spec's `decoding`)
    **GREEDY, "max_new_tokens": None,  # null: the benchmark protocol's answer length (48 tokens for one sentence)
    "dtype": "auto",  # auto: bfloat16 on CUDA, float32 on CPU; or bfloat16 / float16 / float32
    "device_map": None,  # None: the run's --device; "auto" spreads a large model over the visible GPUs
    "attn_implementation": None,
    "processor_kwargs": {},
    "chat_template_kwargs": {},
    # fine-tuning (`recipe`): null = zero-shot, "lora" or "full"
    "finetune": None,
    "lora": LORA_DEFAULTS,
    "train": TRAIN_DEFAULTS,
    "merge_lora": False,  # fold a loaded adapter into the weights before captioning
    # memory knobs (runtime_keys: recorded, not hashed)
    "micro_batch_size": 4,
    "gradient_checkpointing": False,
}
_DTYPES = ("auto", "bfloat16", "float16", "float32")


def _pil_part(path: Path) -> dict[str, Any]:
    return {"type": "image", "image": load_image(path)}


class TransformersVLM(PromptedCaptioner):
    """Any transformers image-text-to-text model (its own chat template, greedy or beam search, zero-shot or fine-tuned)."""

    name = "vlm"
    family = "vlm"
    config_defaults = DEFAULTS
    runtime_keys = frozenset({"micro_batch_size", "gradient_checkpointing"})
    image_part = staticmethod(_pil_part)

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(deep_merge(DEFAULTS, config or {}))  # groups (lora, train) keep the defaults not given
        c = self.config
        if c["dtype"] not in _DTYPES:
            raise UserError(f"vlm: dtype={c['dtype']!r}: choose one of {', '.join(_DTYPES)}")
        _check_decoding(c)
        check_recipe(c)
        if c["finetune"] is not None and c["device_map"] is not None:
            raise UserError("vlm: device_map with finetune: a fine-tune runs on the run's --device (one GPU per "
                            "process under torchrun); drop device_map")
        self.trainable = c["finetune"] is not None  # per config: zero-shot runs do not train
        self.device = "cpu"
        self.checkpoint: Path | None = None  # a folder with fine-tuned weights (`adapters`), set by `load`
        self._model: Any = None
        self._processor: Any = None
        self._trained = False  # `fit` ran: the weights in memory are the ones to save

    @classmethod
    def trains(cls, config: Mapping[str, Any]) -> bool:
        return config.get("finetune") is not None

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
    def _load(self, *, training: bool = False) -> None:
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
        if training and self.config["finetune"] == "full":
            dtype = "float32"  # master weights: bf16 updates of lr 1e-6 would round to nothing (bf16 autocast on CUDA)
        elif dtype == "auto":
            on_gpu = str(self.device).startswith("cuda") or self.config["device_map"] is not None
            dtype = "bfloat16" if on_gpu else "float32"
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "local_files_only": True}
        for key in ("device_map", "attn_implementation"):
            if self.config[key] is not None:
                kwargs[key] = self.config[key]
        kind = kind_of(self.checkpoint) if self.checkpoint is not None else None
        source = self.checkpoint / FULL_DIR if kind == "full" else folder
        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True, **self.config["processor_kwargs"])
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as e:
            first = " ".join(str(e).split())[:300]
            raise UserError(f"model={model_id}: {source} does not load as an image-text-to-text model "
                            f"({type(e).__name__}: {first})") from None
        if kind == "lora":
            # training a LoRA recipe from an adapter continues that adapter; any other use folds it in or keeps it
            resume = training and self.config["finetune"] == "lora"
            merge = not resume and (training or bool(self.config["merge_lora"]))
            model = attach_adapter(model, self.checkpoint, merge=merge, trainable=resume)
        if self.config["device_map"] is None:
            model.to(self.device)
        model.eval()
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._processor = model, processor

    def loaded(self) -> tuple[Any, Any]:
        """(model, processor), loaded on first use."""
        if self._model is None:
            self._load()
        return self._model, self._processor

    # ---------------------------------------------------------------------------------------------- fine-tuning
    def training_model(self, seed: int) -> Any:
        """The base model with the recipe applied (fresh LoRA adapters drawn after seeding torch with `seed`, or
        every weight trainable but the frozen ones), on this model's device, in train mode. A model loaded from a
        fine-tuned folder (``--init DIR --train``) starts from those weights: a LoRA recipe continues the adapter
        (its own rank and targets), a full one trains the full weights or the base with the adapter merged in."""
        import torch

        self._load(training=True)
        model = self._model
        if self.config["gradient_checkpointing"]:
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # its name from transformers 5.2x on
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        torch.manual_seed(seed)
        if not hasattr(model, "peft_config"):  # an adapter loaded from `checkpoint` keeps training as it is
            model = apply_recipe(model, self.config)
        model = model.to(self.device)
        for p in model.parameters():  # AdamW on float32 copies: bf16 ones would round small updates away
            if p.requires_grad and p.dtype != torch.float32:  # (PEFT's modules_to_save copies of a bf16 base)
                p.data = p.data.float()
        model.train()
        self._model, self._trained = model, True
        return model

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext) -> None:
        if self.config["finetune"] is None:
            return
        from idcbench.models.vlm.finetune import fit

        fit(self, train, val, ctx)

    def autocast(self) -> Any:
        """bf16 autocast on CUDA (training and validation); nothing on the CPU."""
        import torch

        if str(self.device).startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def greedy(self) -> Iterator[None]:
        """Decode greedily inside the block (validation during training), whatever the configured decoding."""
        saved = {k: self.config[k] for k in GREEDY}
        self.config.update(GREEDY)
        try:
            yield
        finally:
            self.config.update(saved)

    # ---------------------------------------------------------------------------------------------- save / load
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        super().save(directory)
        if self._trained:
            save_finetuned(self._model, self._processor, directory, base=self._require_model())
        elif self.checkpoint is not None:  # loaded from --init: the run's model/ keeps its own copy
            for item in self.checkpoint.iterdir():
                if item.name == CONFIG_FILE or item.name.startswith("."):
                    continue
                if item.is_dir():
                    shutil.copytree(item, directory / item.name, dirs_exist_ok=True)
                else:
                    shutil.copy2(item, directory / item.name)

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "TransformersVLM":
        """A saved `vlm` folder (``config.json`` written by `save`, fine-tuned weights beside it when trained) or a
        bare PEFT adapter folder (``adapter_config.json``; the base is ``model`` from `overrides`, else the
        adapter's ``base_model_name_or_path``)."""
        directory = Path(directory)
        kind = kind_of(directory)
        if _saved_by_idcbench(directory / CONFIG_FILE):
            model = super().load(directory, **overrides)
            if model.config["finetune"] is not None and kind is None:
                raise UserError(f"{directory}: a {model.config['finetune']} fine-tune whose weights are missing "
                                "(no adapter_config.json, no weights/); rerun the training with --force")
        elif kind == "lora":
            base = overrides.get("model") or adapter_base(directory)
            if not base:
                raise UserError(f"{directory}: the adapter does not name its base model; pass --config model=...")
            model = cls({**overrides, "model": base})
        else:
            raise UserError(f"{directory}: neither a saved vlm model (config.json written by idcbench) nor a PEFT "
                            "adapter (adapter_config.json); pass a run's model/ folder or an adapter folder")
        model.checkpoint = directory if kind else None
        return model

    # ---------------------------------------------------------------------------------------------------- answer
    def answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        import torch

        model, processor = self.loaded()
        inputs = prompt_batch(processor, conversations, self.config["chat_template_kwargs"])
        inputs = inputs.to(model.device, dtype=model.dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, **generation_kwargs(self.config), do_sample=False,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        return processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def generation_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """``generate`` arguments of the decoding keys; the ones at their neutral value are left out (transformers warns
    about a length penalty without beams).

    >>> generation_kwargs({**DEFAULTS, "num_beams": 5, "max_new_tokens": 50, "min_new_tokens": 5,
    ...                    "repetition_penalty": 1.5})
    {'max_new_tokens': 50, 'num_beams': 5, 'min_new_tokens': 5, 'repetition_penalty': 1.5}
    """
    from idcbench.protocol import COCO

    length = config["max_new_tokens"] or COCO.decoding["max_new_tokens"]  # unpinned (`caption`): one sentence's
    out: dict[str, Any] = {"max_new_tokens": int(length), "num_beams": int(config["num_beams"])}
    if int(config["min_new_tokens"]):
        out["min_new_tokens"] = int(config["min_new_tokens"])
    if float(config["repetition_penalty"]) != 1.0:
        out["repetition_penalty"] = float(config["repetition_penalty"])
    if int(config["num_beams"]) > 1 and float(config["length_penalty"]) != 1.0:
        out["length_penalty"] = float(config["length_penalty"])
    return out


def _check_decoding(c: Mapping[str, Any]) -> None:
    def number(key: str) -> float:
        value = c[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"vlm: {key}={value!r}: must be a number")
        return float(value)

    if c["max_new_tokens"] is None:  # pinned from the protocol by resolve_config; `caption`: one sentence's
        from idcbench.protocol import COCO

        c = {**c, "max_new_tokens": COCO.decoding["max_new_tokens"]}
    if number("max_new_tokens") < 1 or not number("max_new_tokens").is_integer():
        raise UserError(f"vlm: max_new_tokens={c['max_new_tokens']}: must be an integer of at least 1")
    if number("num_beams") < 1 or not number("num_beams").is_integer():
        raise UserError(f"vlm: num_beams={c['num_beams']}: must be an integer of at least 1 (1: greedy)")
    if not 0 <= number("min_new_tokens") <= number("max_new_tokens"):
        raise UserError(f"vlm: min_new_tokens={c['min_new_tokens']}: must be between 0 and max_new_tokens")
    if number("repetition_penalty") <= 0:
        raise UserError(f"vlm: repetition_penalty={c['repetition_penalty']}: must be > 0 (1: none)")
    number("length_penalty")


def _saved_by_idcbench(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "family" in data and "config" in data
