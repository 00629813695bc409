"""Prompts and post-processing as data (``prompts/``): the instruction per dataset, k-shot examples, the chat
messages of a pair, and the rules that turn a raw answer into the scored caption.

A pair becomes one user turn: the before image, the after image, then the instruction (which names the images by
position). k-shot runs put k train pairs first, each a user turn answered by an assistant turn holding one of its
references. The messages use the generic content parts of chat templates (``{"type": "image"}`` /
``{"type": "text"}``); each family renders them with the model's own template (transformers) or sends them to a
server (OpenAI-compatible), never with a hand-written prompt format.

>>> instruction_for("ier")[:40]
'The first image is a photo before editin'
>>> postprocess("The main difference between the two images is that the red cube is gone. It was small.")
'the red cube is gone.'
>>> POSTPROCESS_VERSION
'1'
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from idcbench.data import Example, Pair
from idcbench.errors import UserError

PROMPTS_DIR = Path(__file__).parent / "prompts"


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    return json.loads((PROMPTS_DIR / name).read_text(encoding="utf-8"))


def instruction_for(dataset: str | None) -> str:
    """The zero-shot instruction of `dataset`: its protocol's (`idcbench.protocol`; a default one for others). The
    two images come first in the user turn, before then after, and the instruction names them by position: some chat
    templates (LLaVA-OneVision's) render every image of a turn before its text, so labels between the images would
    not stay in place."""
    from idcbench.protocol import protocol_of

    return protocol_of(dataset).instruction


# ----------------------------------------------------------------------------------------------- post-processing
_RULES = _load("postprocess.json")
POSTPROCESS_VERSION: str = _RULES["version"]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s|\n")


def _step(rule: dict[str, Any]) -> Callable[[str], str]:
    if rule["op"] == "sub":
        pattern = re.compile(rule["pattern"], re.IGNORECASE if rule.get("ignore_case") else 0)
        return lambda text: pattern.sub(rule["repl"], text)
    if rule["op"] == "first_sentence":
        return lambda text: _SENTENCE_END.split(text.lstrip(), maxsplit=1)[0]
    raise ValueError(f"prompts/postprocess.json: unknown op {rule['op']!r}")


_STEPS = [_step(rule) for rule in _RULES["steps"]]


def postprocess(raw: str) -> str:
    """The scored caption of a raw answer: ``prompts/postprocess.json``'s steps in order (version
    `POSTPROCESS_VERSION`). Case is kept: the PTB tokenizer of the scorer lower-cases.

    >>> postprocess("Sure! **Answer:** In the second image, the blue sphere moved to the left.\\nAnything else?")
    'the blue sphere moved to the left.'
    >>> postprocess('"Remove the man on the left."')
    'Remove the man on the left.'
    """
    text = raw
    for step in _STEPS:
        text = step(text)
    return text.strip()


# ----------------------------------------------------------------------------------------------------------- shots
def choose_shots(train: Sequence[Example], k: int, seed: int) -> list[dict[str, str]]:
    """`k` in-context examples from the train split: ``{"id", "caption"}``, one reference each, chosen with
    `random.Random(seed)` among the pairs with a non-empty reference (fixed seed, fixed data: the same shots).

    >>> from pathlib import Path
    >>> train = [Example(str(i), Path("b"), Path("a"), (f"change {i}", "")) for i in range(10)]
    >>> choose_shots(train, 2, seed=0)
    [{'id': '6', 'caption': 'change 6'}, {'id': '9', 'caption': 'change 9'}]
    """
    if k < 0:
        raise UserError(f"shots={k}: must be 0 or more")
    candidates = [e for e in train if any(r.strip() for r in e.references)]
    if k > len(candidates):
        raise UserError(f"shots={k}: the train split has only {len(candidates)} pairs with a reference")
    rng = random.Random(seed)
    chosen = rng.sample(candidates, k)
    return [{"id": e.id, "caption": rng.choice([r for r in e.references if r.strip()]).strip()} for e in chosen]


@dataclass(frozen=True)
class Shot:
    """An in-context example: a train pair and the reference its assistant turn answers."""

    pair: Pair
    caption: str


def bind_shots(shot_examples: Sequence[dict[str, str]], train: Sequence[Example]) -> list[Shot]:
    """The pinned ``shot_examples`` (ids and captions) matched to the train split's pairs."""
    by_id = {e.id: e for e in train}
    missing = [s["id"] for s in shot_examples if s["id"] not in by_id]
    if missing:
        raise UserError(f"in-context example {missing[0]!r} is not in the train split of this dataset; "
                        "the run directory belongs to other data, rerun with --force")
    return [Shot(by_id[s["id"]].pair, s["caption"]) for s in shot_examples]


# -------------------------------------------------------------------------------------------------------- messages
def pair_turn(pair: Pair, instruction: str, image: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """One user turn: before image, after image, instruction. `image(path)` makes an image content part."""
    return {"role": "user", "content": [image(pair.before), image(pair.after), {"type": "text", "text": instruction}]}


def conversation(pair: Pair, instruction: str, shots: Sequence[Shot],
                 image: Callable[[Path], dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages for one pair: the k shots (user turn, assistant answer), then the pair's user turn.

    >>> part = lambda path: {"type": "image", "path": str(path)}
    >>> msgs = conversation(Pair(Path("b.png"), Path("a.png")), "What changed?", [Shot(Pair(Path("tb"), Path("ta")),
    ...                     "the cube moved")], part)
    >>> [m["role"] for m in msgs], msgs[1]["content"], [c.get("path") for c in msgs[2]["content"]]
    (['user', 'assistant', 'user'], [{'type': 'text', 'text': 'the cube moved'}], ['b.png', 'a.png', None])
    """
    messages: list[dict[str, Any]] = []
    for shot in shots:
        messages.append(pair_turn(shot.pair, instruction, image))
        messages.append({"role": "assistant", "content": [{"type": "text", "text": shot.caption}]})
    messages.append(pair_turn(pair, instruction, image))
    return messages
