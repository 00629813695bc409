"""Images and training samples for CLIP4IDC: CLIP preprocessing and the official sampling of both stages.

Preprocessing (all stages, as the official code): RGB, resize to size x size bicubic WITHOUT keeping the aspect ratio,
no crop, CLIP mean / std. Sampling plans are pure functions of (seed, stage, epoch), so a resumed run sees the same data.

CLEVR-style data (examples tagged ``kind`` = ``semantic`` / ``distractor`` with a shared ``scene``):
- stage 1: one sample per change caption of each semantic pair; with p = 0.5 the before image is replaced by the
  scene's distractor image (the after image of its distractor pair); no-change captions are unused;
- stage 2: one unit per scene: (before, semantic) with a random change caption AND (before, distractor) with a random
  no-change caption (the double loss).
Other data (Spot-the-Diff, IER): stage 1 one sample per sentence; stage 2 one random sentence per pair per epoch.

>>> plan = stage2_plan([_ex("1", "semantic", "a"), _ex("1_n", "distractor", "b")], seed=0, epoch=0)
>>> [(u.sem[2], u.dis[2]) for u in plan]
[('a', 'b')]
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from idcbench.data import Example, Pair
from idcbench.images import ImagePipeline, Normalize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_NORMALIZE = Normalize(CLIP_MEAN, CLIP_STD)


class ImageLoader:
    """path -> CLIP-normalised float tensor (3 x size x size), decoded in this process: for one-off uses and tests
    (models read through an `idcbench.images.ImagePipeline`). `cache`: keep the resized pixels in memory."""

    def __init__(self, size: int, cache: bool = False):
        self.size, self.cache = size, cache
        self._pipeline = ImagePipeline(size, memory=cache)

    def pixels(self, path: Path) -> torch.Tensor:
        """uint8 3 x size x size."""
        return self._pipeline.read([Path(path)])[0]

    def __call__(self, paths: Sequence[Path]) -> torch.Tensor:
        return CLIP_NORMALIZE(self._pipeline.read(list(paths)))

    def pairs(self, pairs: Sequence[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
        return self([p.before for p in pairs]), self([p.after for p in pairs])


def _rng(seed: int, stage: int, epoch: int) -> random.Random:
    digest = hashlib.sha256(f"clip4idc:{seed}:{stage}:{epoch}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def is_clevr_style(examples: Sequence[Example]) -> bool:
    return any(e.tags.get("kind") in ("semantic", "distractor") for e in examples)


def scenes(examples: Sequence[Example]) -> tuple[dict[str, Example], dict[str, Example]]:
    """semantic and distractor examples by scene (scene = tags["scene"], else the id without a ``_n`` suffix)."""
    sem, dis = {}, {}
    for e in examples:
        scene = e.tags.get("scene") or e.id.removesuffix("_n")
        (sem if e.tags.get("kind") == "semantic" else dis if e.tags.get("kind") == "distractor" else {})[scene] = e
    return sem, dis


@dataclass(frozen=True)
class RetrievalSample:
    before: Path
    after: Path
    caption: str
    alt_before: Path | None = None  # the distractor image that may replace `before`


def stage1_samples(examples: Sequence[Example]) -> list[RetrievalSample]:
    """All stage-1 samples (before the per-epoch shuffle and distractor swap)."""
    out = []
    if is_clevr_style(examples):
        sem, dis = scenes(examples)
        for scene in sorted(sem):
            e, d = sem[scene], dis.get(scene)
            out += [RetrievalSample(e.before, e.after, c, d.after if d else None) for c in e.references if c.strip()]
    else:
        for e in examples:
            out += [RetrievalSample(e.before, e.after, c) for c in e.references if c.strip()]
    return out


def stage1_plan(samples: Sequence[RetrievalSample], *, seed: int, epoch: int, swap_p: float = 0.5) -> list[RetrievalSample]:
    """Shuffled samples of one epoch, with the distractor swap already drawn."""
    rng = _rng(seed, 1, epoch)
    order = list(range(len(samples)))
    rng.shuffle(order)
    plan = []
    for i in order:
        s = samples[i]
        swap = s.alt_before is not None and rng.random() < swap_p
        plan.append(RetrievalSample(s.alt_before if swap else s.before, s.after, s.caption))
    return plan


@dataclass(frozen=True)
class CaptionUnit:
    """One training unit: (before, after, caption) and, for CLEVR-style data, the distractor pair with its caption."""

    sem: tuple[Path, Path, str]
    dis: tuple[Path, Path, str] | None = None


def stage2_plan(examples: Sequence[Example], *, seed: int, epoch: int) -> list[CaptionUnit]:
    rng = _rng(seed, 2, epoch)
    units = []
    if is_clevr_style(examples):
        sem, dis = scenes(examples)
        for scene in sorted(sem):
            e, d = sem[scene], dis.get(scene)
            refs = [c for c in e.references if c.strip()] or [""]
            unit_dis = None
            if d is not None:
                drefs = [c for c in d.references if c.strip()] or [""]
                unit_dis = (d.before, d.after, rng.choice(drefs))
            units.append(CaptionUnit((e.before, e.after, rng.choice(refs)), unit_dis))
    else:
        for e in examples:
            refs = [c for c in e.references if c.strip()]
            if refs:
                units.append(CaptionUnit((e.before, e.after, rng.choice(refs))))
    rng.shuffle(units)
    return units


def batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def _ex(id_: str, kind: str, caption: str) -> Example:
    return Example(id_, Path(f"{id_}_b.png"), Path(f"{id_}_a.png"), (caption,), {"kind": kind, "scene": "1"})
