"""What the two VLM families share: the prompt keys, pinning them for a run, in-context examples, the chat
messages of a batch, post-processing, and saving (a config only: weights stay where they are).

Prompt keys (both families): ``instruction`` (null: the dataset's, from its protocol), ``shots``
(k in-context train pairs, 0 = zero-shot), ``shot_seed``, ``postprocess`` (true: ``prompts/postprocess.json`` makes
the scored caption from the raw answer). `resolve_config` pins ``instruction``, ``shot_examples`` (ids and the
reference each shot answers with) and ``postprocess_version``, so the spec hash covers the prompt text, the shots
and the rules; every default is written out too (``max_new_tokens`` and the like are hashed as used).

>>> class Toy(PromptedCaptioner):
...     config_defaults = {**PROMPT_DEFAULTS}
...     def answer(self, conversations): return ["The difference is that the cube moved."] * len(conversations)
>>> from idcbench.data import Pair
>>> Toy({"instruction": "What changed?"}).caption([Pair(Path("b.png"), Path("a.png"))])
['the cube moved.']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from idcbench.captioner import Caption, Captioner, RunContext, TrainData, deep_merge
from idcbench.data import Pair
from idcbench.errors import UserError
from idcbench.files import read_json
from idcbench.models.vlm.prompting import (
    POSTPROCESS_VERSION, Shot, bind_shots, choose_shots, conversation, instruction_for, postprocess,
)

PROMPT_DEFAULTS: dict[str, Any] = {
    "instruction": None, "shots": 0, "shot_seed": 0, "postprocess": True,
    # pinned by resolve_config (hashed; set them by hand only to reproduce a run)
    "shot_examples": None, "postprocess_version": None,
}
CONFIG_FILE = "config.json"
ANSWER_LENGTH_KEYS = ("max_new_tokens", "max_tokens")  # the families' answer-length keys (transformers, OpenAI)


class PromptedCaptioner(Captioner):
    """A captioner that prompts a chat model with the two images and an instruction; subclasses implement
    `answer` (a batch of conversations -> raw answers) and may extend `resolve_config`."""

    trainable = False
    family: str = ""
    image_part: Callable[[Path], dict[str, Any]] = staticmethod(lambda path: {"type": "image", "path": str(path)})

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.shots: list[Shot] = []
        if int(self.config["shots"] or 0) < 0:
            raise UserError(f"{self.family}: shots={self.config['shots']}: must be 0 or more")

    # ------------------------------------------------------------------------------------------------ run hooks
    @classmethod
    def resolve_config(cls, config: dict[str, Any], data: TrainData) -> dict[str, Any]:
        return pin_prompt(dict(config), data)  # config already whole (`Captioner.full_config`)

    def bind_run(self, ctx: RunContext) -> None:
        # A model loaded from a folder that pinned no prompt (a bare adapter given to --init) gets the prompt that
        # `resolve_config` pinned into the run spec: the same function of the config and the run's dataset.
        self.config = pin_prompt(self.config, ctx.data)
        if self.config.get("shot_examples"):
            self.shots = bind_shots(self.config["shot_examples"], ctx.data.examples())

    # ------------------------------------------------------------------------------------------------ captioning
    def instruction(self) -> str:
        return self.config["instruction"] or instruction_for(None)

    def conversations(self, pairs: Sequence[Pair]) -> list[list[dict[str, Any]]]:
        k = int(self.config["shots"] or 0)
        if k and len(self.shots) != k:
            raise UserError(f"{self.family}: shots={k} needs the train split of a dataset: use `idcbench run ... "
                            "--dataset NAME` (or shots=0)")
        return [conversation(p, self.instruction(), self.shots, self.image_part) for p in pairs]

    def answer(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        raise NotImplementedError

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        raws = self.answer(self.conversations(pairs))
        use_rules = self.config.get("postprocess", True)
        return [Caption(postprocess(r) if use_rules else r.strip(), raw=r) for r in raws]

    # ---------------------------------------------------------------------------------------------- save / load
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps({"family": self.family, "config": self.config}, indent=2,
                                                        ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "PromptedCaptioner":
        saved = read_json(Path(directory) / CONFIG_FILE, what=f"saved {cls.family} model config")
        return cls(deep_merge(saved["config"], overrides))


def pin_prompt(config: dict[str, Any], data: TrainData) -> dict[str, Any]:
    """`config` with what determines the prompt pinned where still open: the dataset's instruction, the chosen
    in-context examples, the post-processing rules' version."""
    from idcbench.protocol import protocol_of

    out = dict(config)
    if out.get("instruction") is None:
        out["instruction"] = instruction_for(data.dataset)
    for key in ANSWER_LENGTH_KEYS:  # null: as long as the benchmark's answers are (its protocol's)
        if key in out and out[key] is None:
            out[key] = protocol_of(data.dataset).decoding["max_new_tokens"]
    k = int(out.get("shots") or 0)
    if k and out.get("shot_examples") is None:
        if not data.has_train:
            raise UserError(f"shots={k}: {data.dataset} has no train split to take in-context examples "
                            "from; use shots=0")
        out["shot_examples"] = choose_shots(data.examples(), k, int(out.get("shot_seed") or 0))
    out["postprocess_version"] = POSTPROCESS_VERSION if out.get("postprocess", True) else "none"
    return out
