"""A small CLEVR-Change-like fixture for the baseline tests: PIL-drawn 64 px scenes, four change types + distractors.

Each scene gives two examples, as in CLEVR-Change: ``"%06d.png"`` (before, semantic change) with change captions and
``"%06d.png_n"`` (before, distractor: a one-pixel shift and a brightness change) with no-change captions. Tags:
``kind`` (semantic / distractor), ``type`` (color / add / drop / move), ``scene``.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

from idcbench.data import Example

COLORS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (40, 60, 220), "yellow": (235, 220, 40)}
SHAPES = ("circle", "square")
SLOTS = [(x, y) for y in (6, 34) for x in (4, 24, 44)]  # top-left corners of 16 px objects
TEMPLATES = {
    "color": ["the {c} {s} changed to {c2}", "the {c} {s} turned {c2}", "the {c} {s} became {c2}"],
    "add": ["a {c} {s} has been added", "someone added a {c} {s}", "there is a new {c} {s}"],
    "drop": ["the {c} {s} has disappeared", "the {c} {s} is missing", "someone removed the {c} {s}"],
    "move": ["the {c} {s} moved", "the {c} {s} changed its location", "someone moved the {c} {s}"],
}
NO_CHANGE = ["no change was made", "the scene is the same as before", "there is no change", "nothing has changed"]


def _draw(objects, shift: int = 0, brightness: float = 1.0) -> Image.Image:
    img = Image.new("RGB", (64, 64), (128, 128, 128))
    d = ImageDraw.Draw(img)
    for (x, y), color, shape in objects:
        box = (x + shift, y, x + shift + 15, y + 15)
        (d.ellipse if shape == "circle" else d.rectangle)(box, fill=COLORS[color])
    return ImageEnhance.Brightness(img).enhance(brightness) if brightness != 1.0 else img


def make_toy(root: Path, n_scenes: int, seed: int = 0, start: int = 0) -> list[Example]:
    """Write `n_scenes` scenes under `root` and return their 2 * n_scenes examples."""
    rng = random.Random(seed)
    root = Path(root)
    for sub in ("images", "sc_images", "nsc_images"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    types = list(TEMPLATES)
    examples = []
    for n in range(start, start + n_scenes):
        slots = rng.sample(SLOTS, 4)
        objects = [(slots[i], rng.choice(list(COLORS)), rng.choice(SHAPES)) for i in range(3)]
        kind = types[n % len(types)]
        after = list(objects)
        j = rng.randrange(3)
        (pos, c, s) = objects[j]
        c2 = None
        if kind == "color":
            c2 = rng.choice([x for x in COLORS if x != c])
            after[j] = (pos, c2, s)
        elif kind == "add":
            c, s = rng.choice(list(COLORS)), rng.choice(SHAPES)
            after.append((slots[3], c, s))
        elif kind == "drop":
            del after[j]
        else:
            after[j] = (slots[3], c, s)
        sid = f"{n:06d}"
        b, a, d = (root / "images" / f"b_{sid}.png", root / "sc_images" / f"s_{sid}.png",
                   root / "nsc_images" / f"n_{sid}.png")
        _draw(objects).save(b)
        _draw(after).save(a)
        _draw(objects, shift=rng.choice([-1, 1]), brightness=rng.uniform(0.85, 1.15)).save(d)
        refs = tuple(t.format(c=c, s=s, c2=c2) for t in TEMPLATES[kind])
        examples.append(Example(f"{sid}.png", b, a, refs, {"kind": "semantic", "type": kind, "scene": sid}))
        examples.append(Example(f"{sid}.png_n", b, d, tuple(rng.sample(NO_CHANGE, 3)),
                                {"kind": "distractor", "type": "distractor", "scene": sid}))
    return examples
