"""Image-text pairs for pretraining the miniature CLIP: `shapes` scenes and descriptions of their objects.

Every batch is drawn fresh from the `shapes` scene generator with its own seed, derived from (run seed, stream,
step) through `numpy.random.SeedSequence` spawn keys. The demo dataset seeds its generator with a plain integer, so
these streams are disjoint from its scenes, and a batch depends only on (seed, step): training is reproducible and
could restart at any step.

Captions: the full description of the scene in random object order (``"a small red metal cube, a large cyan rubber
sphere"``), a description of some of its objects, or one object with some of its attributes (``"a red object"``,
``"a metal cylinder"``), so that the text tower learns each attribute word on its own.

>>> images, texts = training_batch(seed=0, step=0, batch_size=4)
>>> images.shape, images.dtype, len(texts)
((4, 64, 64, 3), dtype('uint8'), 4)
>>> images2, texts2 = training_batch(seed=0, step=0, batch_size=4)
>>> bool((images == images2).all()) and texts == texts2
True
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Iterator, Sequence

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from dataclasses import replace

from idcbench.datasets.shapes import (
    COLORS, MATERIALS, SHAPES, SIZES, Scene, SceneObject, View, describe_scene, fits, render_scene, sample_scene,
)

TRAIN_STREAM = 0x7C11_7A11  # SeedSequence spawn keys of the pretraining and evaluation streams
EVAL_STREAM = 0x7C11_E7A1
ATTRIBUTES: dict[str, tuple[str, ...]] = {"color": COLORS, "shape": SHAPES, "material": MATERIALS, "size": SIZES}
MAX_TEXT_TOKENS = 30  # the context of 32 minus start and end tokens
_WORD_ORDER = ("size", "color", "material", "shape")
# Which attribute a twin changes: mostly shape and material, which colour and size would otherwise make redundant.
TWIN_ATTRIBUTES = {"shape": 0.35, "material": 0.35, "color": 0.15, "size": 0.15}


def stream_rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    """A generator for (seed, stream, key...), independent of ``default_rng(seed)`` and of every other key."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, *key)))


def object_text(obj: SceneObject, attributes: Sequence[str] = _WORD_ORDER, *, article: bool = True) -> str:
    """``"a small red metal cube"``; with fewer `attributes` the noun is the shape or ``"object"``.

    >>> o = SceneObject("cube", "red", "small", "metal", (0.5, 0.5))
    >>> object_text(o), object_text(o, ["color"]), object_text(o, ["material", "shape"], article=False)
    ('a small red metal cube', 'a red object', 'metal cube')
    """
    words = [getattr(obj, a) for a in _WORD_ORDER[:3] if a in attributes]
    words.append(obj.shape if "shape" in attributes else "object")
    return " ".join((["a"] if article else []) + words)


def _n_tokens(text: str) -> int:
    from idcbench.models.tinyclip import tokenizer

    return len(tokenizer().encode(text))


def scene_text(objects: Sequence[SceneObject]) -> str:
    """Every object in the given order, comma separated; the articles are dropped when the text would not fit in the
    32-token context (6 objects), so no object is cut off.

    >>> objs = [SceneObject("cube", "red", "small", "metal", (0.1, 0.5))] * 6
    >>> scene_text(objs[:1]), scene_text(objs).count("a ")
    ('a small red metal cube', 0)
    """
    text = ", ".join(object_text(o) for o in objects)
    if _n_tokens(text) > MAX_TEXT_TOKENS:
        text = ", ".join(object_text(o, article=False) for o in objects)
    return text


def canonical_text(scene: Scene) -> str:
    """The scene's description left to right (`describe_scene`'s order), fitted to the context like `scene_text`."""
    text = describe_scene(scene)
    return text if _n_tokens(text) <= MAX_TEXT_TOKENS else scene_text(sorted(scene.objects, key=lambda o: o.position[0]))


def random_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A true caption of `scene`: all objects (p=0.5), a subset of them (0.2) or one object, some attributes (0.3)."""
    objects = list(scene.objects)
    u = rng.random()
    if u < 0.5 or len(objects) == 1 and u < 0.7:
        return scene_text([objects[i] for i in rng.permutation(len(objects))])
    if u < 0.7:
        k = int(rng.integers(1, len(objects)))
        return scene_text([objects[i] for i in rng.choice(len(objects), size=k, replace=False)])
    obj = objects[int(rng.integers(len(objects)))]
    mask = rng.random(len(_WORD_ORDER)) < 0.5
    if not mask.any():
        mask[int(rng.integers(len(_WORD_ORDER)))] = True
    return object_text(obj, [a for a, keep in zip(_WORD_ORDER, mask) if keep])


def random_view(rng: np.random.Generator) -> View:
    """A small viewpoint and lighting change (half of the time), like the dataset's distractors; the lighting values
    are quantized so the renderer's floor cache stays effective."""
    if rng.random() < 0.5:
        return View()
    return View(shift=float(rng.uniform(-0.04, 0.04)), zoom=float(rng.uniform(0.95, 1.05)),
                light=float(rng.choice([-0.3, -0.15, 0.0, 0.15, 0.3])), brightness=float(rng.choice([0.9, 1.0, 1.1])))


def twin(scene: Scene, rng: np.random.Generator) -> tuple[Scene, int]:
    """`scene` with one attribute of one object changed (a hard negative), and that object's index.

    >>> scene = sample_scene(np.random.default_rng(0), 3)
    >>> other, i = twin(scene, np.random.default_rng(1))
    >>> sum(a != b for a, b in zip(scene.objects, other.objects)), other.objects[i] != scene.objects[i]
    (1, True)
    """
    names, p = list(TWIN_ATTRIBUTES), list(TWIN_ATTRIBUTES.values())
    while True:  # a shape or size change may not fit; colour and material changes always do
        i = int(rng.integers(len(scene.objects)))
        attribute = names[int(rng.choice(len(names), p=p))]
        obj = scene.objects[i]
        values = [v for v in ATTRIBUTES[attribute] if v != getattr(obj, attribute)]
        changed = replace(obj, **{attribute: values[int(rng.integers(len(values)))]})
        others = scene.objects[:i] + scene.objects[i + 1:]
        if attribute in ("color", "material") or fits(changed, others):
            return Scene(others[:i] + (changed,) + others[i:]), i


def training_batch(seed: int, step: int, batch_size: int, size: int = 64, twins: float = 0.5) -> tuple[np.ndarray, list[str]]:
    """Batch `step` of the run with `seed`: uint8 images (B, size, size, 3) of 1-6 object scenes and one caption each.

    A `twins` fraction of the batch comes in pairs: a scene and its `twin`, captioned both by their full descriptions
    or both by the changed object alone, so the loss must tell "metal" from "rubber" and "cube" from "cylinder".
    """
    rng = stream_rng(seed, TRAIN_STREAM, step)
    images = np.empty((batch_size, size, size, 3), dtype=np.uint8)
    texts: list[str] = []
    n_pairs = int(batch_size * twins) // 2
    while len(texts) < batch_size:
        scene, view = sample_scene(rng, int(rng.integers(1, 7))), random_view(rng)
        if len(texts) < 2 * n_pairs:
            other, i = twin(scene, rng)
            whole = rng.random() < 0.6
            for s in (scene, other):
                images[len(texts)] = np.asarray(render_scene(s, size, view=view))
                texts.append(scene_text([s.objects[j] for j in rng.permutation(len(s.objects))]) if whole
                             else object_text(s.objects[i]))
        else:
            images[len(texts)] = np.asarray(render_scene(scene, size, view=view))
            texts.append(random_caption(scene, rng))
    return images, texts


def batches(seed: int, batch_size: int, steps: int, *, twins: float = 0.5, start: int = 0,
            workers: int = 1) -> Iterator[tuple[np.ndarray, list[str]]]:
    """`training_batch` for steps start..steps-1, rendered ahead: in one thread (workers=1, the 2-core default) or in
    `workers` processes. The batches are the same either way."""
    pool: Executor = (ThreadPoolExecutor(1) if workers <= 1 else
                      ProcessPoolExecutor(workers, mp_context=get_context("spawn")))
    ahead = 2 if workers <= 1 else 2 * workers  # the next batches render while the model trains on this one
    pending: deque = deque()
    with pool:
        try:
            next_step = start
            for _ in range(start, steps):
                while len(pending) < ahead and next_step < steps:
                    pending.append(pool.submit(training_batch, seed, next_step, batch_size, 64, twins))
                    next_step += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) at the model's size -> normalized float (B, 3, H, W); equals `tinyclip.image_transform()`."""
    x = torch.tensor(np.asarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - _MEAN) / _STD
