"""CLEVR-Change loader on the real splits / type mapping / IoU files, with generated caption files (the real ones are
not in ../shared/data): two examples per scene, ids of the RCC tooling, subsets and errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from idcbench.data import load_dataset
from idcbench.datasets import shapes
from idcbench.datasets.clevr_change import CLEVRChange
from idcbench.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE = SHARED / "clevr-change"
pytestmark = pytest.mark.skipif(not (SOURCE / "splits.json").exists(), reason="../shared/data/clevr-change absent")


def _captions(ids, seed: int) -> tuple[dict, dict]:
    """Caption files for scene `ids` from the `shapes` caption templates (random objects, 5-8 references each)."""
    rng = np.random.default_rng(seed)
    change, no_change = {}, {}
    for i in ids:
        kind = shapes.CHANGE_TYPES[rng.integers(5)]
        obj = shapes.random_object(rng)
        templates = shapes.CHANGE_TEMPLATES[kind]
        n = int(rng.integers(5, 9))
        change[f"CLEVR_default_{i:06d}.png"] = [templates[k % len(templates)].format(obj=obj.phrase(), new="blue")
                                               for k in range(n)]
        no_change[f"CLEVR_default_{i:06d}.png"] = shapes.no_change_captions(rng, int(rng.integers(2, 7)))
    return change, no_change


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data root with the real annotation files and caption files for the test split only."""
    root = tmp_path_factory.mktemp("clevr-change")
    for name in ("splits.json", "type_mapping.json", "change_captions_by_IOU.json"):
        shutil.copy(SOURCE / name, root / name)
    test_ids = json.loads((root / "splits.json").read_text())["test"]
    change, no_change = _captions(test_ids, seed=0)
    (root / "change_captions.json").write_text(json.dumps(change))
    (root / "no_change_captions.json").write_text(json.dumps(no_change))
    return root


def test_test_split_examples(root: Path):
    dataset = load_dataset("clevr-change", root)
    assert dataset.splits() == ["train", "val", "test"]
    test_ids = json.loads((root / "splits.json").read_text())["test"]
    assert len(test_ids) == 3985
    examples = dataset.examples("test")
    assert len(examples) == 7970
    change = json.loads((root / "change_captions.json").read_text())
    no_change = json.loads((root / "no_change_captions.json").read_text())
    types = {int(name[:-4]): t for t, names in json.loads((root / "type_mapping.json").read_text()).items()
             for name in names}
    for scene, (sem, dis) in zip(test_ids, zip(examples[0::2], examples[1::2])):
        key = f"CLEVR_default_{scene:06d}.png"
        assert (sem.id, dis.id) == (f"{scene:06d}.png", f"{scene:06d}.png_n")
        assert sem.before == dis.before == root / "images" / key
        assert sem.after == root / "sc_images" / f"CLEVR_semantic_{scene:06d}.png"
        assert dis.after == root / "nsc_images" / f"CLEVR_nonsemantic_{scene:06d}.png"
        assert list(sem.references) == change[key] and list(dis.references) == no_change[key]
        assert sem.tags == {"kind": "semantic", "type": types[scene], "scene": f"{scene:06d}"}
        assert dis.tags == {"kind": "distractor", "scene": f"{scene:06d}"}
    assert dataset.references("test")["006594.png_n"] == no_change["CLEVR_default_006594.png"]


def test_subsets(root: Path):
    dataset = load_dataset("clevr-change", root)
    subsets = dataset.subsets("test")
    sizes = {k: len(v) for k, v in subsets.items()}
    assert sizes == {"total": 7970, "semantic": 3985, "distractor": 3985, "color": 797, "material": 797, "add": 797,
                     "drop": 797, "move": 797, "hard-iou": 996}
    assert all(i.endswith(".png") for i in subsets["semantic"]) and all(i.endswith("_n") for i in subsets["distractor"])
    assert sorted(sum((subsets[t] for t in shapes.CHANGE_TYPES), [])) == sorted(subsets["semantic"])
    # hard-iou: int(3985 * 0.25) semantic ids, none easier than any test id left out
    ious = {int(k): v for k, v in json.loads((root / "change_captions_by_IOU.json").read_text()).items()}
    hard = {int(i[:-4]) for i in subsets["hard-iou"]}
    rest = set(dataset.scene_ids("test")) - hard
    assert len(hard) == int(3985 * 0.25)
    assert max(ious[i] for i in hard) <= min(ious[i] for i in rest)


def test_without_iou_file_there_is_no_hard_subset(root: Path, tmp_path: Path):
    for name in ("splits.json", "type_mapping.json", "change_captions.json", "no_change_captions.json"):
        (tmp_path / name).symlink_to(root / name)
    assert "hard-iou" not in load_dataset("clevr-change", tmp_path).subsets("test")


def test_missing_captions_for_a_split(root: Path):
    dataset = load_dataset("clevr-change", root)
    with pytest.raises(UserError, match=r"change_captions\.json: no captions for CLEVR_default_\d{6}\.png .*split 'train'"):
        dataset.examples("train")
    with pytest.raises(UserError, match="unknown split 'dev'"):
        dataset.examples("dev")


def _small_root(tmp_path: Path, splits=None, types=None) -> Path:
    splits = splits if splits is not None else {"train": [1], "val": [], "test": [2]}
    types = types if types is not None else {"color": ["000001.png"], "move": ["000002.png"]}
    caps = {f"CLEVR_default_{i:06d}.png": ["x"] for i in (1, 2)}
    for name, obj in (("splits.json", splits), ("type_mapping.json", types), ("change_captions.json", caps),
                      ("no_change_captions.json", caps)):
        (tmp_path / name).write_text(json.dumps(obj))
    return tmp_path


def test_bad_input_is_one_line(tmp_path: Path):
    with pytest.raises(UserError, match="data root .* not found.*idcbench data info clevr-change"):
        CLEVRChange.load(tmp_path / "nowhere")
    root = _small_root(tmp_path)
    assert [e.id for e in CLEVRChange.load(root).examples("test")] == ["000002.png", "000002.png_n"]
    (root / "no_change_captions.json").unlink()
    with pytest.raises(UserError, match="annotation file not found: .*no_change_captions.json"):
        CLEVRChange.load(root)
    _small_root(tmp_path, splits={"test": [2, "x7"]})
    with pytest.raises(UserError, match=r"splits\.json: test\[1\]: scene id 'x7' is not a non-negative integer"):
        CLEVRChange.load(root).examples("test")
    _small_root(tmp_path, types={"color": ["2.jpg"]})
    with pytest.raises(UserError, match=r"type_mapping\.json: color\[0\]: '2.jpg' is not a scene id"):
        CLEVRChange.load(root).examples("test")
    _small_root(tmp_path, types={"color": ["000001.png"]})
    with pytest.raises(UserError, match="scene 000002.png of split 'test' has no change type"):
        CLEVRChange.load(root).examples("test")
    _small_root(tmp_path)
    (root / "splits.json").write_text('{"test": [1, 2,]}')
    with pytest.raises(UserError, match=r"splits\.json: line 1, column \d+: invalid JSON"):
        CLEVRChange.load(root).examples("test")
