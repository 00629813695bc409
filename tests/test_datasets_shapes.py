"""The synthetic `shapes` dataset: scenes, rendering, visible changes, captions, the CLEVR-Change layout round trip,
byte-identical reruns and the self-generating cache."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from idcbench.data import load_dataset
from idcbench.datasets import shapes
from idcbench.datasets.describe import verify
from idcbench.datasets.shapes import Scene, SceneObject, View
from idcbench.errors import UserError


def _pixels(img) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def _box_slices(obj: SceneObject, size: int, view: View | None = None):
    left, top, right, bottom = shapes.object_box(obj, view)
    return (slice(max(0, int(top * size)), int(np.ceil(bottom * size))),
            slice(max(0, int(left * size)), int(np.ceil(right * size))))


def test_sample_scene_objects_do_not_overlap():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = shapes.sample_scene(rng)
        assert 3 <= len(scene.objects) <= 6
        for k, obj in enumerate(scene.objects):
            assert obj.shape in shapes.SHAPES and obj.color in shapes.COLORS
            assert obj.size in shapes.SIZES and obj.material in shapes.MATERIALS
            assert shapes.fits(obj, scene.objects[:k] + scene.objects[k + 1 :])
    assert len(shapes.sample_scene(rng, n_objects=1).objects) == 1


def test_describe_scene_lists_every_object_left_to_right():
    scene = Scene((SceneObject("sphere", "cyan", "large", "rubber", (0.8, 0.2)),
                   SceneObject("cube", "red", "small", "metal", (0.2, 0.9))))
    assert shapes.describe_scene(scene) == "a small red metal cube, a large cyan rubber sphere"
    rng = np.random.default_rng(1)
    scene = shapes.sample_scene(rng)
    assert shapes.describe_scene(scene).count(", ") == len(scene.objects) - 1


def test_render_is_deterministic_and_views_change_pixels():
    scene = shapes.sample_scene(np.random.default_rng(2))
    img = shapes.render_scene(scene, 64)
    assert img.size == (64, 64) and img.mode == "RGB"
    assert img.tobytes() == shapes.render_scene(scene, 64).tobytes()
    assert shapes.render_scene(scene, 96).size == (96, 96)
    base = _pixels(img)
    for view in (View(shift=0.04), View(light=0.5), View(brightness=1.12), View(zoom=1.04)):
        assert np.abs(_pixels(shapes.render_scene(scene, 64, view=view)) - base).mean() > 0.5
    single = shapes.render_object(SceneObject("cube", "red", "small", "metal", (0.0, 0.0)), 64)
    assert single.size == (64, 64)


def test_every_attribute_is_visible_at_64px():
    """Changing any one attribute of any object, even at the back of the floor, changes its 64 px box clearly."""
    worst = {}
    for shape in shapes.SHAPES:
        for color in shapes.COLORS:
            for size in shapes.SIZES:
                for material in shapes.MATERIALS:
                    for depth in (0.0,):  # the back of the floor: the smallest objects, the hardest case
                        obj = SceneObject(shape, color, size, material, (0.5, depth))
                        box = _box_slices(obj, 64)
                        base = _pixels(shapes.render_scene(Scene((obj,)), 64))[box]
                        variants = {
                            "color": [replace(obj, color=c) for c in shapes.COLORS if c != color],
                            "material": [replace(obj, material=m) for m in shapes.MATERIALS if m != material],
                            "shape": [replace(obj, shape=s) for s in shapes.SHAPES if s != shape],
                        }
                        for attr, others in variants.items():
                            diff = min(np.abs(_pixels(shapes.render_scene(Scene((o,)), 64))[box] - base).mean()
                                       for o in others)
                            worst[attr] = min(worst.get(attr, 1e9), diff)
    assert min(worst.values()) > 6.0, worst  # mean absolute difference per channel (0-255) inside the object's box


@pytest.mark.parametrize("index", range(10))
def test_pairs_captions_and_visible_changes(index: int):
    pairs = shapes.generate_pairs(index, seed=3)
    assert pairs.change.type == shapes.change_type_of(index) == shapes.CHANGE_TYPES[index % 5]
    assert len(pairs.change_captions) == shapes.N_CHANGE_CAPTIONS == len(set(pairs.change_captions))
    assert len(set(pairs.no_change_captions)) == shapes.N_NO_CHANGE_CAPTIONS
    assert set(pairs.no_change_captions) <= set(shapes.NO_CHANGE_TEMPLATES)
    change = pairs.change
    named = change.new if change.type == "add" else change.old
    assert pairs.change_captions[0].count(named.phrase()) == 1  # the first reference names the object fully
    if change.type in ("color", "material"):
        assert getattr(change.new, change.type) in pairs.change_captions[0].split()
    n_before, n_after = len(pairs.before.objects), len(pairs.after.objects)
    assert n_after - n_before == {"add": 1, "drop": -1}.get(change.type, 0)
    assert 3 <= min(n_before, n_after) and max(n_before, n_after) <= 6
    # The change is visible: in the changed object's box(es) the semantic after-image differs from the before-image
    # far more than the distractor does.
    before, semantic, distractor = (_pixels(im) for im in pairs.render(64))
    boxes = [_box_slices(o, 64) for o in (change.old, change.new) if o is not None]
    sem = max(np.abs(semantic[b] - before[b]).mean() for b in boxes)
    assert sem > 8.0
    assert np.abs(distractor - before).mean() > 0.5  # the distractor is not a copy of the before-image


def test_change_captions_wording():
    obj = SceneObject("cube", "red", "small", "metal", (0.3, 0.5))
    other = SceneObject("cylinder", "red", "large", "rubber", (0.8, 0.5))
    before = Scene((obj, other))
    rng = np.random.default_rng(0)
    blue = replace(obj, color="blue")
    caps = shapes.change_captions(before, Scene((blue, other)), shapes.Change("color", obj, blue), rng, n=6)
    assert caps[0] == "the small red metal cube changed to blue"
    assert all(c.startswith("the ") and c.split()[-1] == "blue" for c in caps if "painted" not in c)
    caps = shapes.change_captions(before, Scene((other,)), shapes.Change("drop", obj, None), rng, n=6)
    assert caps[0] == "the small red metal cube is missing"
    assert shapes.referring_phrases(obj, before)[0] == "small red metal cube"
    assert "red cube" not in [p for p in shapes.referring_phrases(obj, Scene((obj, replace(other, shape="cube"))))]


def test_split_ids_are_balanced_and_disjoint():
    ids = shapes.split_ids(100, (0.8, 0.1, 0.1), seed=0)
    assert {k: len(v) for k, v in ids.items()} == {"train": 80, "val": 10, "test": 10}
    assert sorted(sum(ids.values(), [])) == list(range(100))
    for split in ("val", "test"):
        assert sorted(shapes.change_type_of(i) for i in ids[split]) == sorted(shapes.CHANGE_TYPES * 2)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_round_trip_through_clevr_change_loader(tmp_path: Path):
    root = shapes.synthesize(tmp_path / "a", scenes=25, size=48, seed=5, splits=(0.6, 0.2, 0.2))
    for name in ("images/CLEVR_default_000000.png", "sc_images/CLEVR_semantic_000024.png",
                 "nsc_images/CLEVR_nonsemantic_000013.png", "change_captions.json", "no_change_captions.json",
                 "splits.json", "type_mapping.json", "change_captions_by_IOU.json", shapes.MANIFEST):
        assert (root / name).is_file(), name
    dataset = load_dataset("clevr-change", root)
    splits = shapes.split_ids(25, (0.6, 0.2, 0.2), seed=5)
    assert dataset.splits() == ["train", "val", "test"]
    for split, ids in splits.items():
        examples = dataset.examples(split)
        assert len(examples) == 2 * len(ids)
        for e in examples:
            pairs = shapes.generate_pairs(int(e.tags["scene"]), seed=5)
            if e.kind == "semantic":
                assert e.references == pairs.change_captions and e.tags["type"] == pairs.change.type
            else:
                assert e.references == pairs.no_change_captions
        subsets = dataset.subsets(split)
        assert len(subsets["semantic"]) == len(subsets["distractor"]) == len(ids)
        assert len(subsets["hard-iou"]) == int(len(ids) * 0.25)
    report = verify(dataset, workers=1)
    assert report.ok and sum(c.images for c in report.splits.values()) == 3 * 25
    from PIL import Image

    with Image.open(root / "images" / "CLEVR_default_000003.png") as im:
        assert im.size == (48, 48)
    assert load_dataset("shapes", root).examples("test") == dataset.examples("test")


def test_two_runs_are_byte_identical(tmp_path: Path):
    a = shapes.synthesize(tmp_path / "a", scenes=12, size=32, seed=9)
    b = shapes.synthesize(tmp_path / "b", scenes=12, size=32, seed=9, workers=2)
    c = shapes.synthesize(tmp_path / "c", scenes=12, size=32, seed=10)
    assert _files(a) == _files(b)
    assert _files(a) != _files(c)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_synthesize_refuses_to_clobber(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        shapes.synthesize(tmp_path / "out", scenes=2)
    with pytest.raises(UserError, match="--scenes must be at least 1"):
        shapes.synthesize(tmp_path / "x", scenes=0)
    with pytest.raises(UserError, match="expected three non-negative fractions"):
        shapes.parse_splits("0.8,0.2")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_registered_shapes_generates_once_and_regenerates_when_stale(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("IDCBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("IDCBENCH_DATA", raising=False)
    monkeypatch.setattr(shapes, "DEFAULT_SCENES", 10)
    monkeypatch.setattr(shapes, "DEFAULT_SIZE", 32)
    dataset = load_dataset("shapes")
    root = tmp_path / "cache" / "data" / "shapes"
    assert dataset.root == root
    assert {s: len(dataset.examples(s)) for s in dataset.splits()} == {"train": 16, "val": 2, "test": 2}
    stamp = (root / "splits.json").stat().st_mtime_ns
    load_dataset("shapes")
    assert (root / "splits.json").stat().st_mtime_ns == stamp  # not regenerated
    monkeypatch.setattr(shapes, "DEFAULT_SCENES", 20)
    assert len(load_dataset("shapes").examples("test")) == 4  # stale cache regenerated
    # A folder written by `data synth` is used as it is, whatever the defaults.
    mine = shapes.synthesize(tmp_path / "mine", scenes=5, size=32)
    assert sum(len(load_dataset("shapes", mine).examples(s)) for s in ("train", "val", "test")) == 10
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="holds no shapes dataset"):
        load_dataset("shapes", tmp_path / "other")


_PIXELS = """
import hashlib, numpy as np
from idcbench.datasets import shapes
h = hashlib.sha256()
for i in range(200):
    for image in shapes.generate_pairs(i, seed=0).render(64):
        h.update(np.asarray(image).tobytes())
print(h.hexdigest())
"""


def test_pixels_do_not_depend_on_the_simd_code_numpy_dispatches_to():
    """The demo's committed leaderboard must regenerate byte for byte on other CPUs, so its images must too: numpy
    picks other SIMD kernels (exp, power, sums) on other CPUs, which moved float32 pixels by one level. Rendering in
    float64 keeps them; here every dispatched feature of this CPU is turned off in a second process."""
    import os
    import subprocess
    import sys

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    found = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    digests = []
    for disabled in ([], found):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(disabled)}
        if not disabled:
            env.pop("NPY_DISABLE_CPU_FEATURES")
        out = subprocess.run([sys.executable, "-c", _PIXELS], env=env, capture_output=True, text=True, check=True)
        digests.append(out.stdout.strip())
    assert digests[0] == digests[1], f"pixels differ with numpy's {found} kernels turned off"
