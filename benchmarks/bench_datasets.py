"""Dataset speed: the full CLEVR-Change annotations (79,606 pairs) and the `shapes` generator.

- CLEVR-Change: the real splits.json / type_mapping.json / change_captions_by_IOU.json from ../shared/data with caption
  files generated for all 39,803 scene ids (6-7 change, 6 no-change captions each: about the real files' size);
  loading every split's examples and subsets (skipped when ../shared/data is absent).
- shapes: rendering one 64 px scene; writing 500 scenes (1,500 PNGs) on one process.

Run: ``make bench`` or ``python benchmarks/bench_datasets.py`` (prints the times).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "clevr-change"


def clevr_root(tmp: Path) -> Path:
    from idcbench.datasets import shapes

    root = tmp / "clevr-change"
    root.mkdir()
    for name in ("splits.json", "type_mapping.json", "change_captions_by_IOU.json"):
        shutil.copy(SHARED / name, root / name)
    ids = [int(n[:-4]) for names in json.loads((root / "type_mapping.json").read_text()).values() for n in names]
    rng = np.random.default_rng(0)
    change, no_change = {}, {}
    for i in ids:
        templates = shapes.CHANGE_TEMPLATES[shapes.CHANGE_TYPES[i % 5]]
        phrase = shapes.random_object(rng).phrase()
        change[f"CLEVR_default_{i:06d}.png"] = [t.format(obj=phrase, new="blue") for t in templates][: 6 + i % 2]
        no_change[f"CLEVR_default_{i:06d}.png"] = shapes.no_change_captions(rng, 6)
    (root / "change_captions.json").write_text(json.dumps(change))
    (root / "no_change_captions.json").write_text(json.dumps(no_change))
    return root


def load_all(root: Path) -> int:
    from idcbench.datasets.clevr_change import CLEVRChange

    dataset = CLEVRChange.load(root)
    n = 0
    for split in dataset.splits():
        n += len(dataset.examples(split))
        dataset.subsets(split)
    return n


def render_one(scene) -> None:
    from idcbench.datasets import shapes

    shapes.render_scene(scene, 64)


def synth(out: Path, scenes: int = 500) -> None:
    from idcbench.datasets import shapes

    shapes.synthesize(out, scenes=scenes, size=64, seed=0, overwrite=True)


def test_bench_clevr_change_full_load(benchmark, tmp_path):
    import pytest

    if not SHARED.exists():
        pytest.skip("../shared/data/clevr-change absent")
    root = clevr_root(tmp_path)
    assert benchmark.pedantic(load_all, args=(root,), rounds=3, iterations=1) == 79606


def test_bench_shapes_render_64px(benchmark):
    from idcbench.datasets import shapes

    scene = shapes.sample_scene(np.random.default_rng(0), n_objects=6)
    benchmark(render_one, scene)


def test_bench_shapes_synth_500(benchmark, tmp_path):
    benchmark.pedantic(synth, args=(tmp_path / "shapes",), rounds=1, iterations=1)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if SHARED.exists():
            root = clevr_root(tmp)
            t = time.perf_counter()
            n = load_all(root)
            print(f"clevr-change: {n} examples of all splits with subsets in {time.perf_counter() - t:.2f} s")
        from idcbench.datasets import shapes

        scene = shapes.sample_scene(np.random.default_rng(0), n_objects=6)
        t = time.perf_counter()
        for _ in range(200):
            render_one(scene)
        print(f"shapes: render 64 px, 6 objects: {(time.perf_counter() - t) / 200 * 1000:.2f} ms")
        t = time.perf_counter()
        synth(tmp / "shapes", 500)
        print(f"shapes: synthesize 500 scenes (1,500 PNGs), 1 process: {time.perf_counter() - t:.2f} s")
    sys.exit(0)
