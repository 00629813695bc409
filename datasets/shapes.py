"""`shapes`: a synthetic, CLEVR-Change-like dataset, rendered with numpy and PIL in milliseconds.

A scene is 3-6 non-overlapping objects on a grey floor, each with a shape, colour, size and material drawn from CLEVR's
vocabulary. A change pair is (before, after) where one object changed colour or material, was added, dropped or moved;
a distractor pair shows the same scene under a small viewpoint or lighting change. `synthesize` writes the exact
CLEVR-Change layout, so the `clevr-change` loader reads it; the registered `shapes` dataset generates itself once into
the cache (`ensure_shapes`).

The scene API is public (the miniature CLIP pretraining uses it):

>>> rng = np.random.default_rng(0)
>>> scene = sample_scene(rng, n_objects=3)
>>> len(scene.objects)
3
>>> render_scene(scene, 64).size
(64, 64)
>>> describe_scene(Scene((SceneObject("cube", "red", "small", "metal", (0.3, 0.5)),)))
'a small red metal cube'
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from idcbench.data import CHANGE_TYPES, data_root
from idcbench.errors import UserError

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")
# CLEVR's eight colours; COLOR_RGB holds their RGB values from CLEVR's `properties.json` (the albedo of the renderer).
COLORS: tuple[str, ...] = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
SIZES: tuple[str, ...] = ("small", "large")
MATERIALS: tuple[str, ...] = ("rubber", "metal")

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

# Object width as a fraction of the image width at depth scale 1.
_WIDTH = {"small": 0.14, "large": 0.27}
_LIGHT = np.array([-0.45, 0.75, 0.6])  # x right, y up, z towards the viewer


@dataclass(frozen=True)
class SceneObject:
    """One object. `position` = (x, depth): x is the horizontal image position in [0, 1] (left to right), depth in
    [0, 1] goes from the back of the floor (0) to the front (1)."""

    shape: str
    color: str
    size: str
    material: str
    position: tuple[float, float]

    def phrase(self) -> str:
        """``"small red metal cube"``."""
        return f"{self.size} {self.color} {self.material} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """An ordered tuple of objects (the order of generation; rendering sorts by depth)."""

    objects: tuple[SceneObject, ...]


@dataclass(frozen=True)
class View:
    """Camera and light of one rendering. The default view is the canonical one of a before-image.

    shift: horizontal camera shift (fraction of the width; near objects move more: parallax); zoom: scale about the
    image centre; light: rotation of the light direction (radians about the vertical axis); brightness: light intensity.
    """

    shift: float = 0.0
    zoom: float = 1.0
    light: float = 0.0
    brightness: float = 1.0


# --------------------------------------------------------------------------------------------------- geometry


def _scale(depth: float) -> float:
    return 0.8 + 0.4 * depth


def _base_v(depth: float) -> float:
    """Image row (fraction of the height) where an object at `depth` touches the floor."""
    return 0.42 + 0.46 * depth


def _extent(obj: SceneObject) -> tuple[float, float]:
    """Width and height of the object's image box, as fractions of the image size, in the canonical view."""
    w = _WIDTH[obj.size] * _scale(obj.position[1])
    if obj.shape == "cube":
        f = 0.8 * w
        return f * 1.28, f * 1.28
    if obj.shape == "cylinder":
        return w * 0.9, w * 1.05
    return w, w


def object_box(obj: SceneObject, view: View | None = None) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the object in image fractions under `view`."""
    if view is None:
        return _canonical_box(obj)
    return _box(obj, view)


@lru_cache(maxsize=4096)
def _canonical_box(obj: SceneObject) -> tuple[float, float, float, float]:
    return _box(obj, View())


def _box(obj: SceneObject, view: View) -> tuple[float, float, float, float]:
    x, depth = obj.position
    w, h = _extent(obj)
    u = 0.5 + (x - 0.5 + view.shift * (0.6 + 0.6 * depth)) * view.zoom
    v = 0.5 + (_base_v(depth) - 0.5) * view.zoom
    w, h = w * view.zoom, h * view.zoom
    return u - w / 2, v - h, u + w / 2, v


def _boxes_clear(a: tuple[float, ...], b: tuple[float, ...], gap: float = 0.02) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def fits(obj: SceneObject, others: Sequence[SceneObject], gap: float = 0.02) -> bool:
    """True when `obj` is inside the image and its box keeps `gap` from every box of `others`."""
    box = object_box(obj)
    if box[0] < 0.03 or box[2] > 0.97 or box[1] < 0.03:
        return False
    return all(_boxes_clear(box, object_box(o), gap) for o in others)


def random_position(rng: np.random.Generator) -> tuple[float, float]:
    return (float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.0, 1.0)))


def random_object(rng: np.random.Generator, position: tuple[float, float] | None = None) -> SceneObject:
    """An object with uniformly drawn attributes (and position, unless given)."""
    return SceneObject(
        shape=SHAPES[rng.integers(len(SHAPES))],
        color=COLORS[rng.integers(len(COLORS))],
        size=SIZES[rng.integers(len(SIZES))],
        material=MATERIALS[rng.integers(len(MATERIALS))],
        position=position if position is not None else random_position(rng),
    )


def place(obj: SceneObject, others: Sequence[SceneObject], rng: np.random.Generator, tries: int = 200) -> SceneObject | None:
    """`obj` moved to a random free position (None when no free position was found in `tries`)."""
    for _ in range(tries):
        candidate = replace(obj, position=random_position(rng))
        if fits(candidate, others):
            return candidate
    return None


def sample_scene(rng: np.random.Generator, n_objects: int | None = None) -> Scene:
    """A random scene of `n_objects` (default: 3-6 drawn uniformly) non-overlapping objects.

    >>> s = sample_scene(np.random.default_rng(1))
    >>> 3 <= len(s.objects) <= 6
    True
    """
    n = int(rng.integers(3, 7)) if n_objects is None else int(n_objects)
    if not 1 <= n <= 8:
        raise ValueError(f"n_objects must be in 1..8, got {n}")
    while True:
        objects: list[SceneObject] = []
        for _ in range(n):
            obj = place(random_object(rng), objects, rng)
            if obj is None:
                break
            objects.append(obj)
        if len(objects) == n:
            return Scene(tuple(objects))


def describe_object(obj: SceneObject) -> str:
    """``"a small red metal cube"``."""
    return f"a {obj.phrase()}"


def describe_scene(scene: Scene) -> str:
    """Every object of the scene, left to right: ``"a small red metal cube, a large cyan rubber sphere"``."""
    return ", ".join(describe_object(o) for o in sorted(scene.objects, key=lambda o: o.position[0]))


# --------------------------------------------------------------------------------------------------- rendering

def _supersampling(size: int) -> int:
    """Objects are drawn at size * factor and box-filtered down (anti-aliasing)."""
    return 4 if size <= 48 else 3 if size <= 128 else 2


def _light(view: View) -> np.ndarray:
    c, s = math.cos(view.light), math.sin(view.light)
    x, y, z = _LIGHT
    light = np.array([c * x + s * z, y, -s * x + c * z])
    return light / np.linalg.norm(light)


@lru_cache(maxsize=8)
def _floor_parts(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = (np.arange(n, dtype=np.float64) + 0.5) / n
    return 0.60 - 0.12 * c, np.exp(-(((c - 0.25) / 0.35) ** 2)), c


def _floor(n: int, light: float, brightness: float) -> np.ndarray:
    """The floor: a soft vertical gradient with a light pool that follows the light direction (separable, so cheap)."""
    base, pool_rows, c = _floor_parts(n)
    cx = 0.5 - 0.35 * math.sin(light) - 0.12
    pool_cols = np.exp(-(((c - cx) / 0.45) ** 2))
    img = (base[:, None] + np.float64(0.07) * pool_rows[:, None] * pool_cols[None, :]) * np.float64(brightness)
    return img[..., None] * np.array([1.0, 0.99, 0.97], dtype=np.float64)


def _shade(normal: np.ndarray, albedo: np.ndarray, metal: bool, light: np.ndarray, brightness: float) -> np.ndarray:
    """Colour of surface points with unit normals (h, w, 3): Lambert + ambient; metal adds a sharp white highlight,
    an environment reflection and darker body colour, so it stays visible as a bright dot at 8 px."""
    diffuse = np.clip(normal @ light, 0.0, None)[..., None]
    half = light + np.array([0.0, 0.0, 1.0], dtype=np.float64)
    half /= np.float64(np.linalg.norm(half))
    nh = np.clip(normal @ half, 0.0, None)[..., None]
    if metal:
        env = 0.5 + 0.5 * normal[..., 1:2]  # the bright "sky" above reflects in upward-facing parts
        color = albedo * (0.18 + 0.55 * diffuse) + 0.22 * env * albedo + 0.95 * nh**40 + 0.25 * nh**6
    else:
        color = albedo * (0.42 + 0.62 * diffuse) + 0.04 * nh**4
    return color * brightness


def _grid(x0: int, y0: int, x1: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as a (1, w) row and an (h, 1) column (broadcast, never materialised)."""
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + np.float64(0.5)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + np.float64(0.5)
    return xs, ys


def _normalize(n: np.ndarray) -> np.ndarray:
    return n / np.sqrt((n * n).sum(axis=-1, keepdims=True))


def _masked(xs: np.ndarray, ys: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The x and y coordinates of the pixels in `mask`, as flat arrays."""
    return np.broadcast_to(xs, mask.shape)[mask], np.broadcast_to(ys, mask.shape)[mask]


def _draw_sphere(canvas, cx, cy, r, albedo, metal, light, brightness):
    x0, y0, x1, y1 = _clip_box(canvas, cx - r, cy - r, cx + r, cy + r)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = _grid(x0, y0, x1, y1)
    mask = ((xs - cx) / r) ** 2 + ((cy - ys) / r) ** 2 < 1.0
    px, py = _masked(xs, ys, mask)
    dx, dy = (px - cx) / r, (cy - py) / r
    normal = np.stack([dx, dy, np.sqrt(np.clip(1.0 - dx * dx - dy * dy, 0.0, None))], axis=-1)
    _paint(canvas, x0, y0, mask, _shade(normal, albedo, metal, light, brightness))


def _draw_cylinder(canvas, cx, bottom, w, h, albedo, metal, light, brightness):
    a = w / 2
    b = 0.28 * a  # ellipse half-height of the caps
    top = bottom - h
    x0, y0, x1, y1 = _clip_box(canvas, cx - a, top - b, cx + a, bottom + b)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = _grid(x0, y0, x1, y1)
    ex = (xs - cx) / a
    ell_top = ex**2 + ((ys - top) / b) ** 2 < 1.0
    ell_bot = ex**2 + ((ys - bottom) / b) ** 2 < 1.0
    body = (np.abs(ex) < 1.0) & (((ys >= top) & (ys <= bottom)) | ell_bot)
    mask = body | ell_top
    px, py = _masked(xs, ys, mask)
    cap = ell_top[mask]
    nx = np.clip((px - cx) / a, -1.0, 1.0)
    ny = 0.45 * (1.0 - 2.0 * np.clip((py - top) / (bottom - top), 0.0, 1.0))  # a slight barrel: metal gets a highlight
    body_n = _normalize(np.stack([nx, ny, np.sqrt(np.clip(1 - nx * nx, 0.0, None))], axis=-1))
    # The top cap: flat, facing up, slightly bulged so that metal caps show a highlight.
    cap_n = _normalize(np.stack([0.35 * nx, np.ones_like(nx), -0.35 * (py - top) / b + 0.3], axis=-1))
    normal = np.where(cap[:, None], cap_n, body_n)
    _paint(canvas, x0, y0, mask, _shade(normal, albedo, metal, light, brightness))


def _draw_cube(canvas, cx, bottom, f, albedo, metal, light, brightness, side: int):
    """An oblique box: front face f x f, top face and one side face (right when side=1, left when side=-1)."""
    d = 0.28 * f
    dx, dy = side * d, d
    fx0 = cx - (f + d) / 2 + (0 if side > 0 else d)
    fx1 = fx0 + f
    fy1 = bottom
    fy0 = bottom - f
    bx0, bx1 = min(fx0, fx0 + dx), max(fx1, fx1 + dx)
    x0, y0, x1, y1 = _clip_box(canvas, bx0, fy0 - dy, bx1, fy1)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = _grid(x0, y0, x1, y1)
    front = (xs >= fx0) & (xs <= fx1) & (ys >= fy0) & (ys <= fy1)
    t = (fy0 - ys) / dy  # 0 at the front edge of the top face, 1 at its back edge
    top = (t >= 0) & (t <= 1) & (xs - t * dx >= fx0) & (xs - t * dx <= fx1)
    edge_x = fx1 if side > 0 else fx0
    s = (xs - edge_x) / dx  # 0 at the front face's side edge, 1 at the back
    sidef = (s >= 0) & (s <= 1) & (ys + s * dy >= fy0) & (ys + s * dy <= fy1)
    mask = front | top | sidef
    px, py = _masked(xs, ys, mask)
    on_top, on_side = top[mask], (sidef & ~front & ~top)[mask]
    # Local face coordinates in [-1, 1] bulge the flat normals a little: metal faces get a gradient and a highlight.
    u = (px - (fx0 + fx1) / 2) / (f / 2)
    v = ((fy0 + fy1) / 2 - py) / (f / 2)
    tt = (fy0 - py) / dy
    ss = (px - edge_x) / dx
    ones = np.ones_like(u)
    n_front = np.stack([0.3 * u, 0.3 * v, ones], axis=-1)
    n_top = np.stack([0.3 * u, ones, 0.3 * (1 - 2 * tt)], axis=-1)
    n_side = np.stack([side * ones, 0.3 * v, 0.3 * (1 - 2 * ss)], axis=-1)
    normal = np.where(on_top[:, None], n_top, np.where(on_side[:, None], n_side, n_front))
    _paint(canvas, x0, y0, mask, _shade(_normalize(normal), albedo, metal, light, brightness))


def _draw_shadow(canvas, cx, bottom, w, light, strength=0.35):
    rx, ry = 0.75 * w, 0.2 * w
    cx = cx - light[0] * 0.35 * w
    cy = bottom - 0.05 * w
    x0, y0, x1, y1 = _clip_box(canvas, cx - rx * 1.5, cy - ry * 1.5, cx + rx * 1.5, cy + ry * 1.5)
    if x0 >= x1 or y0 >= y1:
        return
    xs, ys = _grid(x0, y0, x1, y1)
    # exp(-1.5 d2) factorises into a column and a row: an outer product instead of a 2-D exp.
    shade = 1.0 - strength * (np.exp(-1.5 * ((ys - cy) / ry) ** 2) * np.exp(-1.5 * ((xs - cx) / rx) ** 2))
    canvas[y0:y1, x0:x1] *= shade[..., None]


def _clip_box(canvas, x0, y0, x1, y1) -> tuple[int, int, int, int]:
    h, w = canvas.shape[:2]
    return max(0, int(math.floor(x0))), max(0, int(math.floor(y0))), min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))


def _paint(patch, x0, y0, mask, color):
    """Write `color` (one row per True pixel of `mask`) into the RGBA patch region at (x0, y0); alpha = 1 there."""
    h, w = mask.shape
    region = patch[y0 : y0 + h, x0 : x0 + w]
    region[mask, :3] = color
    region[mask, 3] = 1.0


def _draw_object(canvas, obj: SceneObject, box: tuple[float, float, float, float], ss: int, light, brightness) -> None:
    """Draw `obj` with its image box (pixels) onto `canvas`: the object is drawn `ss` times finer into an RGBA patch
    that covers its box, box-filtered down and alpha-composited (anti-aliased edges at a fraction of the cost of
    supersampling the whole image)."""
    size = canvas.shape[0]
    left, top, right, bottom = box
    w = right - left
    # The patch: whole output pixels around the box (cylinder caps reach slightly beyond it), clipped to the image.
    px0, py0, px1, py1 = _clip_box(canvas, left - 1, top - 1, right + 1, bottom + 1)
    if px0 >= px1 or py0 >= py1:
        return
    ph, pw = py1 - py0, px1 - px0
    patch = np.zeros((ph * ss, pw * ss, 4), dtype=np.float64)
    albedo = np.array(COLOR_RGB[obj.color], dtype=np.float64) / 255.0
    metal = obj.material == "metal"
    # Object coordinates in the patch's fine pixels.
    cx, bot, top_, wf = ((left + right) / 2 - px0) * ss, (bottom - py0) * ss, (top - py0) * ss, w * ss
    if obj.shape == "sphere":
        _draw_sphere(patch, cx, (top_ + bot) / 2, wf / 2, albedo, metal, light, brightness)
    elif obj.shape == "cylinder":
        _draw_cylinder(patch, cx, bot - 0.12 * wf, wf, (bot - top_) - 0.24 * wf, albedo, metal, light, brightness)
    else:
        side = 1 if (left + right) / 2 < size / 2 else -1  # perspective: objects left of centre show their right face
        _draw_cube(patch, cx, bot, wf / 1.28, albedo, metal, light, brightness, side)
    small = patch.reshape(ph, ss, pw * ss * 4).sum(axis=1).reshape(ph, pw, ss, 4).sum(axis=2) / np.float64(ss * ss)
    alpha = small[..., 3:]
    region = canvas[py0:py1, px0:px1]
    region *= 1.0 - alpha
    region += small[..., :3]  # premultiplied: uncovered fine pixels hold zero colour


def render_scene(scene: Scene, size: int = 64, *, view: View | None = None) -> Image.Image:
    """Render `scene` as a `size` x `size` RGB image under `view` (default: the canonical view).

    Deterministic: the same scene, size and view give the same pixels.
    """
    view = view or View()
    ss = _supersampling(size)
    light = _light(view)
    canvas = _floor(size, view.light, view.brightness)  # smooth: no supersampling needed
    placed = []
    for obj in scene.objects:
        left, top, right, bottom = object_box(obj, view)
        placed.append((obj.position[1], obj, (left * size, top * size, right * size, bottom * size)))
    for _, obj, (left, top, right, bottom) in placed:
        _draw_shadow(canvas, (left + right) / 2, bottom, right - left, light)
    for _, obj, box in sorted(placed, key=lambda p: p[0]):  # back to front
        _draw_object(canvas, obj, box, ss, light, view.brightness)
    return Image.fromarray((np.clip(canvas * np.float64(255.0), 0.0, 255.0) + 0.5).astype(np.uint8), "RGB")


def render_object(obj: SceneObject, size: int = 64, *, view: View | None = None) -> Image.Image:
    """One object alone in the middle of the floor, at the scale it has in scenes (zero-shot classification).

    The object's position is replaced by the image centre, so `small` and `large` keep their scene sizes.
    """
    centred = replace(obj, position=(0.5, 0.55))
    return render_scene(Scene((centred,)), size, view=view)


# --------------------------------------------------------------------------------------------------- changes
@dataclass(frozen=True)
class Change:
    """A semantic change: `type`, the object as it was (`old`, None for add) and as it is (`new`, None for drop)."""

    type: str
    old: SceneObject | None
    new: SceneObject | None


def _unique_targets(scene: Scene) -> list[int]:
    """Indices of objects whose full description is unique in the scene (so every caption names exactly one)."""
    phrases = [o.phrase() for o in scene.objects]
    return [i for i, p in enumerate(phrases) if phrases.count(p) == 1]


def _box_centre(obj: SceneObject) -> tuple[float, float]:
    l, t, r, b = object_box(obj)
    return (l + r) / 2, (t + b) / 2


def apply_change(scene: Scene, change_type: str, rng: np.random.Generator) -> tuple[Scene, Change] | None:
    """The after-scene of a `change_type` change of `scene` (None when this scene does not allow it, e.g. no room)."""
    objects = list(scene.objects)
    if change_type == "add":
        new = place(random_object(rng), objects, rng)
        if new is None:
            return None
        after = Scene(tuple(objects + [new]))
        return (after, Change("add", None, new)) if after.objects.index(new) in _unique_targets(after) else None
    targets = _unique_targets(scene)
    if not targets:
        return None
    i = targets[rng.integers(len(targets))]
    old = objects[i]
    if change_type == "color":
        new = replace(old, color=[c for c in COLORS if c != old.color][rng.integers(len(COLORS) - 1)])
    elif change_type == "material":
        new = replace(old, material=[m for m in MATERIALS if m != old.material][0])
    elif change_type == "move":
        others = objects[:i] + objects[i + 1 :]
        ox, oy = _box_centre(old)
        new = None
        for _ in range(200):
            cand = place(old, others, rng, tries=1)
            if cand is not None and math.hypot(_box_centre(cand)[0] - ox, _box_centre(cand)[1] - oy) >= 0.25:
                new = cand
                break
        if new is None:
            return None
    elif change_type == "drop":
        return Scene(tuple(objects[:i] + objects[i + 1 :])), Change("drop", old, None)
    else:
        raise ValueError(f"unknown change type {change_type!r} (known: {', '.join(CHANGE_TYPES)})")
    objects[i] = new
    after = Scene(tuple(objects))
    if change_type != "move" and i not in _unique_targets(after):
        return None  # e.g. the recoloured object now looks exactly like another one
    return after, Change(change_type, old, new)


def distractor_view(rng: np.random.Generator) -> View:
    """A clearly visible but non-semantic change: a small camera move, a lighting change, or both."""
    kind = int(rng.integers(3))  # 0 viewpoint, 1 lighting, 2 both
    view = View()
    if kind in (0, 2):
        view = replace(view, shift=float(rng.choice([-1, 1]) * rng.uniform(0.025, 0.06)), zoom=float(1 + rng.uniform(-0.05, 0.05)))
    if kind in (1, 2):
        view = replace(view, light=float(rng.choice([-1, 1]) * rng.uniform(0.3, 0.7)),
                       brightness=float(1 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.16)))
    return view


def semantic_view(rng: np.random.Generator) -> View:
    """The after-image of a semantic change is also jittered (as in CLEVR-Change), but mildly: the change stays obvious."""
    return View(shift=float(rng.uniform(-0.012, 0.012)), zoom=float(1 + rng.uniform(-0.012, 0.012)),
                light=float(rng.uniform(-0.1, 0.1)), brightness=float(1 + rng.uniform(-0.04, 0.04)))


def box_iou(scene: Scene, view: View) -> float:
    """Mean IoU of each object's box in the canonical view and under `view` (1 = no viewpoint change)."""
    ious = []
    for obj in scene.objects:
        a, b = object_box(obj), object_box(obj, view)
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        ious.append(inter / union)
    return float(np.mean(ious))


# --------------------------------------------------------------------------------------------------- captions

CHANGE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "color": (
        "the {obj} changed to {new}", "the {obj} turned {new}", "the {obj} became {new}",
        "the {obj} changed its color to {new}", "the {obj} is now {new}", "the {obj} has been painted {new}",
    ),
    "material": (
        "the {obj} changed to {new}", "the {obj} turned {new}", "the {obj} became {new}",
        "the {obj} changed its material to {new}", "the {obj} is now {new}", "the {obj} is made of {new} now",
    ),
    "add": (
        "someone added a {obj}", "a {obj} has been added", "a {obj} appeared", "a new {obj} is in the scene",
        "there is a new {obj}", "a {obj} has been newly placed",
    ),
    "drop": (
        "the {obj} is missing", "the {obj} has disappeared", "the {obj} is no longer there", "the {obj} was removed",
        "someone removed the {obj}", "the {obj} is gone",
    ),
    "move": (
        "the {obj} moved", "the {obj} changed its location", "the {obj} is in a different location",
        "someone moved the {obj}", "the {obj} has been moved", "the {obj} was moved to a different location",
    ),
}
NO_CHANGE_TEMPLATES: tuple[str, ...] = (
    "no change was made", "the scene is the same as before", "there is no change", "nothing has changed",
    "the two scenes seem identical", "no change has occurred", "the scene remains the same", "there is no difference",
    "nothing was modified", "the scene did not change",
)
_ATTRIBUTE_SETS = (
    ("size", "color", "material", "shape"),
    ("size", "color", "shape"),
    ("color", "material", "shape"),
    ("size", "material", "shape"),
    ("color", "shape"),
    ("size", "shape"),
)


def referring_phrases(obj: SceneObject, scene: Scene) -> list[str]:
    """Descriptions of `obj` that pick it out of `scene`, longest first (the full one always comes first)."""
    phrases = []
    for attrs in _ATTRIBUTE_SETS:
        key = tuple(getattr(obj, a) for a in attrs)
        matches = sum(tuple(getattr(o, a) for a in attrs) == key for o in scene.objects)
        if matches == 1 or attrs == _ATTRIBUTE_SETS[0]:
            phrases.append(" ".join(key))
    return phrases


def change_captions(before: Scene, after: Scene, change: Change, rng: np.random.Generator, n: int = 6) -> list[str]:
    """`n` reference captions of one change, with distinct templates; about half name the object fully.

    >>> obj = SceneObject("cube", "red", "small", "metal", (0.3, 0.5))
    >>> change_captions(Scene((obj,)), Scene((replace(obj, color="blue"),)),
    ...                 Change("color", obj, replace(obj, color="blue")), np.random.default_rng(0), n=1)[0]
    'the small red metal cube changed to blue'
    """
    templates = CHANGE_TEMPLATES[change.type]
    if change.type == "add":
        phrases, new_word = referring_phrases(change.new, after), ""
    else:
        phrases = referring_phrases(change.old, before)
        new_word = {"color": change.new.color if change.new else "", "material": change.new.material if change.new else ""}.get(change.type, "")
    order = [0] + [int(i) + 1 for i in rng.permutation(len(templates) - 1)]
    captions = []
    for k in range(n):
        template = templates[order[k % len(templates)]]
        phrase = phrases[0] if k % 2 == 0 or len(phrases) == 1 else phrases[1 + int(rng.integers(len(phrases) - 1))]
        captions.append(template.format(obj=phrase, new=new_word))
    return captions


def no_change_captions(rng: np.random.Generator, n: int = 6) -> list[str]:
    """`n` distinct no-change captions."""
    return [NO_CHANGE_TEMPLATES[int(i)] for i in rng.permutation(len(NO_CHANGE_TEMPLATES))[:n]]


# --------------------------------------------------------------------------------------------------- one scene id

N_CHANGE_CAPTIONS = 6
N_NO_CHANGE_CAPTIONS = 6


@dataclass(frozen=True)
class ScenePairs:
    """Everything generated for one scene id: the before scene, its semantic change and the two after-views."""

    index: int
    before: Scene
    after: Scene
    change: Change
    semantic_view: View
    distractor_view: View
    change_captions: tuple[str, ...]
    no_change_captions: tuple[str, ...]

    def render(self, size: int) -> tuple[Image.Image, Image.Image, Image.Image]:
        """(before, semantic after, distractor after) images."""
        return (
            render_scene(self.before, size),
            render_scene(self.after, size, view=self.semantic_view),
            render_scene(self.before, size, view=self.distractor_view),
        )


def change_type_of(index: int) -> str:
    """Change types cycle with the scene id, so every split is balanced."""
    return CHANGE_TYPES[index % len(CHANGE_TYPES)]


def generate_pairs(index: int, seed: int = 0) -> ScenePairs:
    """Scene id `index` of the dataset with `seed`. It depends only on (seed, index), never on the number of scenes.

    >>> generate_pairs(7, seed=0) == generate_pairs(7, seed=0)
    True
    """
    rng = np.random.default_rng([seed, index])
    change_type = change_type_of(index)
    low, high = {"add": (3, 5), "drop": (4, 6)}.get(change_type, (3, 6))
    while True:
        before = sample_scene(rng, int(rng.integers(low, high + 1)))
        result = apply_change(before, change_type, rng)
        if result is not None:
            break
    after, change = result
    return ScenePairs(
        index=index,
        before=before,
        after=after,
        change=change,
        semantic_view=semantic_view(rng),
        distractor_view=distractor_view(rng),
        change_captions=tuple(change_captions(before, after, change, rng, N_CHANGE_CAPTIONS)),
        no_change_captions=tuple(no_change_captions(rng, N_NO_CHANGE_CAPTIONS)),
    )


# --------------------------------------------------------------------------------------------------- the dataset on disk

DEFAULT_SCENES = 3000
DEFAULT_SIZE = 64
DEFAULT_SEED = 0
DEFAULT_SPLITS: tuple[float, float, float] = (0.8, 0.1, 0.1)
GENERATOR_VERSION = 2  # bump when the pictures or captions change: cached copies are then regenerated
MANIFEST = "shapes_manifest.json"
SPLIT_NAMES = ("train", "val", "test")


def split_ids(scenes: int, fractions: Sequence[float] = DEFAULT_SPLITS, seed: int = DEFAULT_SEED) -> dict[str, list[int]]:
    """Scene ids per split, balanced over change types: each type's ids are shuffled, the types interleaved, then
    test and val take the first round(n * fraction) ids and train the rest.

    >>> {k: len(v) for k, v in split_ids(20, (0.8, 0.1, 0.1)).items()}
    {'train': 16, 'val': 2, 'test': 2}
    """
    rng = np.random.default_rng([seed, 0x5EED])
    per_type = [[int(i) for i in rng.permutation(np.arange(t, scenes, len(CHANGE_TYPES)))] for t in range(len(CHANGE_TYPES))]
    interleaved = [ids[k] for k in range(max(map(len, per_type), default=0)) for ids in per_type if k < len(ids)]
    total = float(sum(fractions))
    n_test = round(scenes * fractions[2] / total)
    n_val = round(scenes * fractions[1] / total)
    return {
        "train": sorted(interleaved[n_test + n_val :]),
        "val": sorted(interleaved[n_test : n_test + n_val]),
        "test": sorted(interleaved[:n_test]),
    }


def parse_splits(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1) (train, val, test); raises a `UserError` on anything else."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0:
        raise UserError(f"--splits {text!r}: expected three non-negative fractions train,val,test, e.g. 0.8,0.1,0.1")
    if not _sums_to_one(values):
        raise UserError(f"--splits {text!r}: the fractions add up to {sum(values):g}, not 1 (e.g. 0.8,0.1,0.1)")
    return values  # type: ignore[return-value]


def _sums_to_one(fractions: Sequence[float]) -> bool:
    return abs(sum(fractions) - 1.0) <= 1e-6


def _save_png(image: Image.Image, path) -> None:
    # Fixed encoder settings and no metadata: the same pixels give the same bytes.
    image.save(path, format="PNG", compress_level=6)


def _write_scenes(out: str, ids: Sequence[int], seed: int, size: int) -> list[tuple[int, str, list[str], list[str], float]]:
    """Render and write scene ids `ids` into the layout under `out`; return their annotations."""
    root = Path(out)
    rows = []
    for i in ids:
        pairs = generate_pairs(i, seed)
        before, semantic, distractor = pairs.render(size)
        _save_png(before, root / "images" / f"CLEVR_default_{i:06d}.png")
        _save_png(semantic, root / "sc_images" / f"CLEVR_semantic_{i:06d}.png")
        _save_png(distractor, root / "nsc_images" / f"CLEVR_nonsemantic_{i:06d}.png")
        iou = round(box_iou(pairs.before, pairs.distractor_view), 6)
        rows.append((i, pairs.change.type, list(pairs.change_captions), list(pairs.no_change_captions), iou))
    return rows


def _dump(path, obj, sort_keys: bool = True) -> None:
    path.write_text(json.dumps(obj, sort_keys=sort_keys) + "\n", encoding="utf-8")


def manifest(scenes: int, size: int, seed: int, splits: Sequence[float]) -> dict:
    """What determines the generated files (stored as `MANIFEST`; a cache with another manifest is stale)."""
    return {"generator": "idcbench shapes", "version": GENERATOR_VERSION, "scenes": int(scenes), "size": int(size),
            "seed": int(seed), "splits": [float(f) for f in splits]}


def check_synth_args(out, *, scenes: int, size: int, splits: Sequence[float], overwrite: bool = False) -> None:
    """Raise a one-line `UserError` for arguments `synthesize` would reject (before any work starts)."""
    out = Path(out).expanduser()
    if scenes < 1:
        raise UserError(f"--scenes must be at least 1, got {scenes}")
    if not 16 <= size <= 1024:
        raise UserError(f"--size must be between 16 and 1024 pixels, got {size}")
    if len(splits) != 3 or min(splits) < 0 or not _sums_to_one(splits):
        raise UserError(f"splits must be three non-negative fractions (train, val, test) that add up to 1, "
                        f"got {list(splits)}")
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")


def synthesize(
    out,
    *,
    scenes: int = DEFAULT_SCENES,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    splits: Sequence[float] = DEFAULT_SPLITS,
    overwrite: bool = False,
    workers: int = 1,
    on_progress=None,
):
    """Write a `shapes` dataset in the CLEVR-Change layout to `out` and return its path.

    The files are written to a temporary sibling folder and renamed into place at the end, so `out` is either
    complete or absent. `on_progress(done, total)` is called as scenes are written. Two calls with the same
    arguments write byte-identical files (whatever `workers` is).
    """
    out = Path(out).expanduser()
    check_synth_args(out, scenes=scenes, size=size, splits=splits, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for sub in ("images", "sc_images", "nsc_images"):
            (tmp / sub).mkdir()
        rows = _generate(tmp, scenes, seed, size, workers, on_progress)
        change = {f"CLEVR_default_{i:06d}.png": c for i, _, c, _, _ in rows}
        no_change = {f"CLEVR_default_{i:06d}.png": n for i, _, _, n, _ in rows}
        types = {t: [f"{i:06d}.png" for i, ti, _, _, _ in rows if ti == t] for t in CHANGE_TYPES}
        _dump(tmp / "change_captions.json", change)
        _dump(tmp / "no_change_captions.json", no_change)
        _dump(tmp / "type_mapping.json", types, sort_keys=False)  # CHANGE_TYPES order
        _dump(tmp / "splits.json", split_ids(scenes, splits, seed), sort_keys=False)  # train, val, test
        _dump(tmp / "change_captions_by_IOU.json", {str(i): iou for i, _, _, _, iou in rows})
        _dump(tmp / MANIFEST, manifest(scenes, size, seed, splits))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _generate(root, scenes: int, seed: int, size: int, workers: int, on_progress) -> list:
    chunk = 50 if workers <= 1 else max(1, min(50, -(-scenes // (4 * workers))))  # ~4 chunks per worker at least
    chunks = [list(range(s, min(s + chunk, scenes))) for s in range(0, scenes, chunk)]
    rows: list = []
    done = 0
    if workers > 1 and len(chunks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may hold torch / rich threads; workers only need numpy and PIL.
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for part in pool.map(_write_scenes, [str(root)] * len(chunks), chunks, [seed] * len(chunks), [size] * len(chunks)):
                rows.extend(part)
                done += len(part)
                if on_progress:
                    on_progress(done, scenes)
    else:
        for ids in chunks:
            rows.extend(_write_scenes(str(root), ids, seed, size))
            done += len(ids)
            if on_progress:
                on_progress(done, scenes)
    return rows


def _replace_dir(tmp, out) -> None:
    """Move the finished `tmp` folder to `out`, replacing an existing `out` (renamed aside first, then deleted)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(root) -> dict | None:
    """The manifest of a generated folder, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_shapes(root=None, *, on_progress=None, workers: int | None = None):
    """The data root of the `shapes` dataset, generated first when needed, and its path.

    `root` defaults to `idcbench.data.data_root("shapes")`. A folder generated by this function (its manifest says
    ``"managed": true``) is regenerated when its parameters differ from the module defaults (`DEFAULT_SCENES`,
    `DEFAULT_SIZE`, `DEFAULT_SEED`, `DEFAULT_SPLITS`, `GENERATOR_VERSION`); a folder written by `idcbench data synth`
    or holding any other CLEVR-Change-layout data is used as it is. Concurrent callers (e.g. the ranks of a
    torchrun job) wait on a lock file: one generates, the others find it done.
    """
    root = data_root("shapes", root)
    if _usable(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(root.parent / f".{root.name}.lock"):
        if _usable(root):  # generated by another process while we waited
            return root
        if workers is None:  # processes pay off from a few hundred scenes (each spawn costs about a second)
            workers = min(4, os.cpu_count() or 1) if DEFAULT_SCENES >= 300 else 1
        built = synthesize(root.parent / f".{root.name}.build-{os.getpid()}", scenes=DEFAULT_SCENES, size=DEFAULT_SIZE,
                           seed=DEFAULT_SEED, splits=DEFAULT_SPLITS, overwrite=True, workers=workers,
                           on_progress=on_progress)
        _dump(built / MANIFEST, {**_wanted(), "managed": True})
        _replace_dir(built, root)
    return root


def _wanted() -> dict:
    return manifest(DEFAULT_SCENES, DEFAULT_SIZE, DEFAULT_SEED, DEFAULT_SPLITS)


def _usable(root) -> bool:
    """True when `root` can be read as it is; False when it must be (re)generated; a UserError for foreign data."""
    have = read_manifest(root)
    if have is not None:
        managed = have.pop("managed", False)
        return have == _wanted() or not managed
    if root.exists() and any(root.iterdir()):
        if (root / "splits.json").exists():
            return True  # CLEVR-Change-layout data put here by the user
        raise UserError(f"{root} exists but holds no shapes dataset; empty it, or set --data-root / $IDCBENCH_DATA elsewhere")
    return False


@contextmanager
def _locked(path):
    """An exclusive advisory lock on `path` (POSIX flock; no locking where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
