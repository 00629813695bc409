"""Token tensors of a chat VLM, for captioning and for training: one home for how a prompt becomes tokens.

A prompt is rendered by the model's own chat template with the generation prompt and left-padded (`prompt_batch`);
captioning generates after it. A training example is that same prompt followed by its completion: the text the
template writes for the assistant's answer (the caption, the end-of-turn token, anything after), of which the tokens
up to and including the first end token are kept (`completion_ids`). Labels are the completion's tokens and -100 at
every prompt, image and padding position (`training_batch`): the loss is on the caption and its end-of-turn token only,
and the prompt tokens a model trains on are exactly the ones it captions after. This is TRL's prompt-completion layout
for vision-language models (prompts through the processor, completions through the tokenizer, nothing truncated).

>>> keep_through_end([5, 6, 2, 9], {2})  # caption tokens, the end-of-turn token (2), then a newline: dropped
[5, 6, 2]
"""

from __future__ import annotations

from typing import Any, Collection, Sequence

from idcbench.errors import UserError

IGNORE = -100  # the label of a position without loss (PyTorch's cross_entropy ignore_index)
Messages = list[dict[str, Any]]


def assistant_turn(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def prompt_batch(processor: Any, conversations: Sequence[Messages], template_kwargs: dict[str, Any]) -> Any:
    """The processor's tensors of `conversations`, rendered with the generation prompt and padded on the left."""
    return processor.apply_chat_template(
        list(conversations), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"}, **template_kwargs)


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end an answer: the generation config's ``eos_token_id`` (one or several) and the tokenizer's."""
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if value is not None:
            ids.update(value if isinstance(value, (list, tuple)) else [value])
    return ids


def keep_through_end(ids: Sequence[int], end_ids: Collection[int]) -> list[int]:
    """`ids` up to and including the first end token (what a model generates before it stops); all when none."""
    for i, t in enumerate(ids):
        if t in end_ids:
            return list(ids[:i + 1])
    return list(ids)


def completion_text(processor: Any, prompt: Messages, caption: str, template_kwargs: dict[str, Any]) -> str:
    """What the chat template writes after the generation prompt when the assistant answers `caption`."""
    opened = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False, **template_kwargs)
    full = processor.apply_chat_template([*prompt, assistant_turn(caption)], tokenize=False, **template_kwargs)
    if not full.startswith(opened):
        raise UserError("the model's chat template renders an answered conversation differently from the prompt it "
                        "generates after (the generation prompt is not a prefix of it), so its prompt tokens would "
                        "differ between training and captioning; fine-tune another model or fix its chat_template")
    return full[len(opened):]


def completion_ids(processor: Any, prompt: Messages, caption: str, end_ids: Collection[int],
                   template_kwargs: dict[str, Any]) -> list[int]:
    """The tokens a model should generate after `prompt` to answer `caption`: the caption, then the template's
    end-of-turn token (the first of `end_ids`). A template that closes the answer with no end token is refused: the
    model would never learn to stop."""
    text = completion_text(processor, prompt, caption, template_kwargs)
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    kept = keep_through_end(ids, end_ids)
    if not kept or kept[-1] not in end_ids:
        raise UserError(f"the chat template closes an answer with {text[-20:]!r}, which holds none of the model's "
                        f"end tokens {sorted(end_ids)} (generation_config.eos_token_id); set it in the model's "
                        "generation_config.json")
    return kept


def training_batch(processor: Any, prompts: Sequence[Messages], completions: Sequence[Sequence[int]],
                   template_kwargs: dict[str, Any], pad_id: int) -> tuple[dict[str, Any], Any]:
    """(model inputs, labels): the left-padded prompts (`prompt_batch`, exactly as captioning renders them) followed
    by the right-padded completions. Labels have one column per completion position (-100 on padding); the
    logits that predict them are the last ``labels.shape[1] + 1`` positions but one (`caption_loss`). Every other
    per-token tensor of the processor (``mm_token_type_ids``, ``token_type_ids``) is extended with 0: text."""
    import torch

    enc = prompt_batch(processor, prompts, template_kwargs)
    ids = enc["input_ids"]
    rows, width = ids.shape
    longest = max(len(c) for c in completions)
    comp = torch.full((rows, longest), pad_id, dtype=ids.dtype)
    mask = torch.zeros((rows, longest), dtype=enc["attention_mask"].dtype)
    labels = torch.full((rows, longest), IGNORE, dtype=torch.long)
    for i, c in enumerate(completions):
        comp[i, :len(c)] = torch.as_tensor(c, dtype=ids.dtype)
        mask[i, :len(c)] = 1
        labels[i, :len(c)] = torch.as_tensor(c, dtype=torch.long)
    batch = dict(enc)
    for key, value in enc.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and tuple(value.shape) == (rows, width):
            tail = comp if key == "input_ids" else mask if key == "attention_mask" else torch.zeros(
                (rows, longest), dtype=value.dtype)
            batch[key] = torch.cat([value, tail], dim=1)
    return batch, labels


def caption_loss(model: Any, batch: dict[str, Any], labels: Any) -> Any:
    """Sum of the token cross-entropies of `labels` (-100 skipped). Only the logits that predict a completion token
    are computed (``logits_to_keep``): a vocabulary of 150 k x every prompt position would be most of the memory."""
    import torch.nn.functional as F

    width = labels.shape[1]
    logits = model(**batch, logits_to_keep=width + 1, use_cache=False).logits[:, :width]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device),
                           ignore_index=IGNORE, reduction="sum")
