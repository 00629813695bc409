"""What the miniature CLIP learned: zero-shot attribute classification of single objects and scene retrieval R@1.

Both use held-out data from the evaluation stream (`data.EVAL_STREAM`), never seen in pretraining:
- zero-shot: every one of the 96 (shape, colour, size, material) objects alone on the floor (`render_object`), under
  `views` views (the canonical one, then small random ones), classified by colour (8 classes), shape (3), material (2)
  and size (2) with two prompt sets: ``ensemble`` (class embedding = mean over every full phrase "a small red metal
  cube" that has the class) and ``simple`` ("a red object", "a cube", "a metal object", "a small object");
- retrieval: `n_scenes` scenes of 3-6 objects and their left-to-right descriptions, image->text and text->image R@1.

>>> import torch, idcbench.models.tinyclip as t
>>> _ = torch.manual_seed(0)
>>> scores = evaluate(t.create_tiny_clip(pretrained=None), views=1, n_scenes=16)
>>> sorted(scores["zero_shot"]["ensemble"])
['color', 'material', 'shape', 'size']
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from idcbench.datasets.shapes import SceneObject, render_object, render_scene, sample_scene
from idcbench.models.tinyclip.data import (
    ATTRIBUTES, EVAL_STREAM, canonical_text, object_text, random_view, stream_rng, to_tensor,
)

EVAL_SEED = 7
CHANCE = {a: round(1.0 / len(v), 4) for a, v in ATTRIBUTES.items()}


def single_objects(seed: int = EVAL_SEED, views: int = 3) -> tuple[np.ndarray, list[SceneObject]]:
    """Every attribute combination alone, under `views` views: uint8 images (N, 64, 64, 3) and their objects."""
    rng = stream_rng(seed, EVAL_STREAM, 0)
    objects = [SceneObject(shape, color, size, material, (0.5, 0.55)) for shape, color, size, material in
               itertools.product(*(ATTRIBUTES[a] for a in ("shape", "color", "size", "material")))]
    images, labels = [], []
    for v in range(views):
        for obj in objects:
            view = None if v == 0 else replace(random_view(rng), shift=float(rng.uniform(-0.04, 0.04)))
            images.append(np.asarray(render_object(obj, 64, view=view)))
            labels.append(obj)
    return np.stack(images), labels


def heldout_scenes(seed: int = EVAL_SEED, n: int = 256) -> tuple[np.ndarray, list[str]]:
    """`n` scenes of 3-6 objects (canonical view) and their left-to-right descriptions."""
    rng = stream_rng(seed, EVAL_STREAM, 1)
    scenes = [sample_scene(rng) for _ in range(n)]
    return np.stack([np.asarray(render_scene(s, 64)) for s in scenes]), [canonical_text(s) for s in scenes]


@torch.no_grad()
def embed_images(model, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    device = next(model.parameters()).device
    out = [model.encode_image(to_tensor(images[i:i + batch_size]).to(device), normalize=True)
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).float().cpu()


@torch.no_grad()
def embed_texts(model, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    from idcbench.models.tinyclip import tokenizer

    device = next(model.parameters()).device
    out = [model.encode_text(tokenizer()(texts[i:i + batch_size]).to(device), normalize=True)
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out).float().cpu()


def class_prompts(attribute: str, value: str, style: str) -> list[str]:
    """The prompts whose mean embedding stands for `attribute` = `value`."""
    if style == "simple":
        return [f"a {value}" if attribute == "shape" else f"a {value} object"]
    fixed = {a: ([value] if a == attribute else list(values)) for a, values in ATTRIBUTES.items()}
    return [object_text(SceneObject(shape, color, size, material, (0, 0)))
            for shape, color, size, material in itertools.product(
                fixed["shape"], fixed["color"], fixed["size"], fixed["material"])]


def zero_shot(model, images: np.ndarray, objects: list[SceneObject], style: str = "ensemble") -> dict[str, float]:
    """Accuracy per attribute of nearest-class-embedding classification."""
    feats = embed_images(model, images)
    scores = {}
    for attribute, values in ATTRIBUTES.items():
        classes = torch.stack([F.normalize(embed_texts(model, class_prompts(attribute, v, style)).mean(0), dim=0)
                               for v in values])
        predicted = (feats @ classes.T).argmax(1)
        truth = torch.tensor([values.index(getattr(o, attribute)) for o in objects])
        scores[attribute] = round(float((predicted == truth).float().mean()), 4)
    return scores


def retrieval_r1(model, images: np.ndarray, texts: list[str]) -> dict[str, float]:
    """Image->text and text->image recall@1 (pair i is the match of i)."""
    sim = embed_images(model, images) @ embed_texts(model, texts).T
    target = torch.arange(len(texts))
    return {"image_to_text": round(float((sim.argmax(1) == target).float().mean()), 4),
            "text_to_image": round(float((sim.argmax(0) == target).float().mean()), 4)}


def evaluate(model, seed: int = EVAL_SEED, views: int = 3, n_scenes: int = 256) -> dict:
    """All checks, as fractions in [0, 1], with the evaluation settings that produced them."""
    was_training = model.training
    model.eval()
    try:
        images, objects = single_objects(seed, views)
        scene_images, texts = heldout_scenes(seed, n_scenes)
        return {
            "settings": {"seed": seed, "views": views, "single_objects": len(objects), "scenes": n_scenes},
            "zero_shot": {style: zero_shot(model, images, objects, style) for style in ("ensemble", "simple")},
            "retrieval_r1": retrieval_r1(model, scene_images, texts),
            "chance": {"zero_shot": CHANCE, "retrieval_r1": round(1.0 / n_scenes, 4)},
        }
    finally:
        model.train(was_training)
