"""Fine-tuned `vlm` weights on disk, and a merged export.

A LoRA fine-tune is saved in PEFT's format at the top of the folder (``adapter_config.json``,
``adapter_model.safetensors``, the processor's files beside them), so a run's ``model/`` folder is itself an adapter
that PEFT, vLLM (``--lora-modules``) or ``--init`` load; the adapter names its base by the run's ``model`` value
(repo id or folder). A full fine-tune is a complete transformers model folder under ``weights/`` (float32, processor
included). `export_merged` folds an adapter into its base and writes one transformers model folder:

    python -m idcbench.models.vlm.adapters runs/<dataset>/vlm/<hash>/model merged/ [--model BASE]

then ``idcbench run vlm --config model=merged/ ...`` captions without PEFT (merging rounds the weights once: captions
can differ from base + adapter in a few tokens, which is why the run itself keeps the adapter separate unless
``merge_lora=true``).

>>> import tempfile
>>> d = Path(tempfile.mkdtemp()); kind_of(d) is None
True
>>> _ = (d / ADAPTER_CONFIG).write_text('{"base_model_name_or_path": "Qwen/Qwen2.5-VL-3B-Instruct"}')
>>> kind_of(d), adapter_base(d)
('lora', 'Qwen/Qwen2.5-VL-3B-Instruct')
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from idcbench.errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
FULL_DIR = "weights"


@contextlib.contextmanager
def peft_quietly():
    """PEFT reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps a model: not the user's
    concern, so its FutureWarning is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def kind_of(directory: Path) -> str | None:
    """``"lora"`` for a PEFT adapter folder, ``"full"`` for a folder with a full model under ``weights/``, else None."""
    directory = Path(directory)
    if (directory / ADAPTER_CONFIG).is_file():
        return "lora"
    if (directory / FULL_DIR / "config.json").is_file():
        return "full"
    return None


def adapter_base(directory: Path) -> str | None:
    """The base model an adapter was trained on (its ``base_model_name_or_path``)."""
    try:
        return json.loads((Path(directory) / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def save_finetuned(model: Any, processor: Any, directory: Path, base: str) -> None:
    """Write a fine-tuned model into `directory`: the adapter (PEFT format, base recorded as `base`) or the full
    weights under ``weights/``; the processor beside either."""
    directory = Path(directory)
    if hasattr(model, "peft_config"):
        for cfg in model.peft_config.values():
            cfg.base_model_name_or_path = base  # a repo id or a folder the user named, not a cache path
        model.save_pretrained(directory)
        processor.save_pretrained(directory)
        return
    target = directory / FULL_DIR
    model.save_pretrained(target)
    processor.save_pretrained(target)


def attach_adapter(base_model: Any, directory: Path, *, merge: bool, trainable: bool = False) -> Any:
    """`base_model` with the adapter in `directory` (inference mode unless `trainable`); folded into the weights when
    `merge`."""
    from peft import PeftModel

    try:
        with peft_quietly():
            model = PeftModel.from_pretrained(base_model, str(directory), is_trainable=trainable)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = " ".join(str(e).split())[:300]
        raise UserError(f"{directory}: the adapter does not load onto this base model ({type(e).__name__}: "
                        f"{first}); pass the base it was trained on with --config model=...") from None
    return model.merge_and_unload() if merge else model


def export_merged(adapter_dir: Path, out: Path, *, model: str | None = None, device: str = "cpu") -> Path:
    """Base + the adapter in `adapter_dir`, merged, saved as a transformers model folder `out` (with the processor)."""
    from idcbench.models.vlm.transformers_vlm import TransformersVLM

    if kind_of(adapter_dir) != "lora":
        raise UserError(f"{adapter_dir}: no {ADAPTER_CONFIG}; pass a LoRA run's model/ folder or a PEFT adapter")
    overrides: dict[str, Any] = {"merge_lora": True}
    if model:
        overrides["model"] = model
    vlm = TransformersVLM.load(Path(adapter_dir), **overrides).to(device)
    merged, processor = vlm.loaded()
    out = Path(out)
    merged.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m idcbench.models.vlm.adapters",
                                     description="Merge a LoRA adapter into its base model and save the result.")
    parser.add_argument("adapter", type=Path, help="a LoRA run's model/ folder or a PEFT adapter folder")
    parser.add_argument("out", type=Path, help="where to write the merged transformers model folder")
    parser.add_argument("--model", default=None, help="the base (folder or cached repo id); default: the adapter's")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        print(export_merged(args.adapter, args.out, model=args.model, device=args.device))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
