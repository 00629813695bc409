"""A tiny dataset and a deterministic captioner for the runner tests; also a CLI entry that registers them.

`toy-diff`: 8 x 8 px image pairs in tmp folders; the after image has one colour channel raised (a semantic change) or
only a brightness shift (a distractor). Captions name the channel. `toy-captioner` learns, per channel, the smallest
mean difference seen in training (a resumable `fit`: one JSON state file per epoch in ctx.workdir), captions from pixel
statistics and embeds pairs and texts for retrieval. `toy-other` is a different model family (wrong-checkpoint tests).

Run the CLI with them registered: ``python tests/_runner_toy.py run toy-captioner --dataset toy-diff ...``
(also as a torchrun script).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from idcbench.captioner import Captioner, FitContext, ModelSpec  # noqa: E402
from idcbench.data import Dataset, DatasetInfo, Example, Pair, load_image  # noqa: E402
from idcbench.errors import UserError  # noqa: E402
from idcbench.registry import DATASETS, MODELS  # noqa: E402
from idcbench.train_log import VAL_LOG, ValLog  # noqa: E402

CHANNELS = ("red", "green", "blue")
TOY_EPOCH_SECONDS = 10.0
SPLIT_SIZES = {"train": 12, "val": 6, "test": 17}  # 17: shards and batches do not divide it evenly


def make_toy(root: Path, seed: int = 0) -> Path:
    """Write the toy data under `root`: images/<split>_<i>_{a,b}.png and annotations.json."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    ann: dict[str, list[dict[str, Any]]] = {}
    for split, n in SPLIT_SIZES.items():
        ann[split] = []
        for i in range(n):
            before = rng.integers(40, 120, size=(8, 8, 3)).astype(np.int16)
            after = before.copy()
            semantic = i % 3 != 2
            c = int(rng.integers(3))
            if semantic:
                after[..., c] += int(rng.integers(20, 100))
                refs = [f"the {CHANNELS[c]} went up", f"more {CHANNELS[c]} now", f"it is {CHANNELS[c]}der"]
            else:
                after += 3
                refs = ["nothing changed", "no change", "the same scene"]
            name = f"{split}_{i}"
            Image.fromarray(before.clip(0, 255).astype(np.uint8)).save(root / "images" / f"{name}_a.png")
            Image.fromarray(after.clip(0, 255).astype(np.uint8)).save(root / "images" / f"{name}_b.png")
            ann[split].append({"id": name, "refs": refs, "kind": "semantic" if semantic else "distractor",
                               "channel": CHANNELS[c] if semantic else "none"})
    (root / "annotations.json").write_text(json.dumps(ann))
    return root


class ToyDataset(Dataset):
    info = DatasetInfo("toy-diff", "toy pairs", "none", "tests/_runner_toy.py", "annotations.json, images/")

    @classmethod
    def load(cls, root: Path) -> "ToyDataset":
        if not (Path(root) / "annotations.json").exists():
            raise UserError(f"toy-diff: data root {root} not found or has no annotations.json (pass --data-root)")
        return cls(root)

    def __init__(self, root: Path):
        super().__init__(root)
        self._ann = json.loads((self.root / "annotations.json").read_text())

    def splits(self) -> list[str]:
        return list(self._ann)

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        img = self.root / "images"
        return [Example(a["id"], img / f"{a['id']}_a.png", img / f"{a['id']}_b.png", tuple(a["refs"]),
                        {"kind": a["kind"], "type": a["channel"]}) for a in self._ann[split]]

    def subsets(self, split: str) -> dict[str, list[str]]:
        ex = self.examples(split)
        return {"total": [e.id for e in ex], "semantic": [e.id for e in ex if e.kind == "semantic"],
                "distractor": [e.id for e in ex if e.kind == "distractor"]}


def _diff(pair: Pair) -> np.ndarray:
    b = np.asarray(load_image(pair.before), dtype=np.float64)
    a = np.asarray(load_image(pair.after), dtype=np.float64)
    return (a - b).mean(axis=(0, 1))


class ToyCaptioner(Captioner):
    """Pixel-statistics captioner for runner tests (deterministic, resumable fit)."""

    name = "toy-captioner"

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__({"epochs": 3, "margin": 0.0, **(config or {})})
        self.threshold = 10.0

    def fit(self, train: Sequence[Example], val: Sequence[Example], ctx: FitContext) -> None:
        epochs = int(self.config["epochs"])
        state = {"epoch": 0, "threshold": 100.0, "seconds": 0.0}
        for e in range(epochs, 0, -1):  # resume from the last finished epoch
            f = ctx.workdir / f"epoch{e}.json"
            if f.exists():
                state = json.loads(f.read_text())
                break
        # The curve, as the real models keep it (training seconds carried in the state: a resumed fit counts the
        # killed process's epochs too); the toy's epoch "takes" 10 s, so that tests can check the cost exactly.
        log = ValLog(ctx.workdir / VAL_LOG, start_epoch=state["epoch"])
        diffs = [float(_diff(x.pair).max()) for x in train if x.kind == "semantic"]
        for epoch in range(state["epoch"] + 1, epochs + 1):
            state = {"epoch": epoch, "threshold": min(state["threshold"], sorted(diffs)[epoch - 1] / 2),
                     "seconds": state["seconds"] + TOY_EPOCH_SECONDS}
            (ctx.workdir / f"epoch{epoch}.json").write_text(json.dumps(state))
            log.add(epoch, epoch * len(train), state["seconds"], state["threshold"], "threshold")
            ctx.progress("fit", epoch, epochs, loss=1.0 / epoch, lr=0.1)
            if os.environ.get("TOY_EXIT_AFTER_EPOCH") == str(epoch):
                os._exit(9)
        self.threshold = state["threshold"] + float(self.config["margin"])

    def caption(self, pairs: Sequence[Pair]) -> list[str]:
        out = []
        for p in pairs:
            d = _diff(p)
            c = int(np.argmax(d))
            out.append(f"the {CHANNELS[c]} went up" if d[c] > self.threshold else "nothing changed")
        return out

    def embed_pairs(self, pairs: Sequence[Pair]) -> np.ndarray:
        return np.stack([np.concatenate([_diff(p), [1.0]]) for p in pairs])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([[50.0 * (ch in t) for ch in CHANNELS] + [1.0] for t in texts])

    def save(self, directory: Path) -> None:
        (Path(directory) / "toy.json").write_text(json.dumps({"config": self.config, "threshold": self.threshold}))

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "ToyCaptioner":
        f = Path(directory) / "toy.json"
        if not f.exists():
            raise FileNotFoundError(f)
        data = json.loads(f.read_text())
        if "threshold" not in data:
            raise KeyError("threshold")
        model = cls({**data["config"], **overrides})
        model.threshold = float(data["threshold"])
        return model


class OtherCaptioner(ToyCaptioner):
    """Another family (for wrong-checkpoint tests)."""

    name = "toy-other"
    trainable = False


def register() -> None:
    if "toy-diff" not in DATASETS._entries:
        DATASETS.add("toy-diff", ToyDataset, description="runner test pairs")
        MODELS.add("toy-captioner", ModelSpec(ToyCaptioner, {"epochs": 3}), description="runner test captioner")
        MODELS.add("toy-other", ModelSpec(OtherCaptioner, {}), description="runner test, other family")


if __name__ == "__main__":
    register()
    from idcbench.cli import main

    main(sys.argv[1:])
