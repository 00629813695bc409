"""IER loader on the real annotation files: one example per uid, `valid` read as `val`, mixed image formats."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from idcbench.data import load_dataset, load_image
from idcbench.datasets.describe import verify
from idcbench.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE = SHARED / "ier"
pytestmark = pytest.mark.skipif(not (SOURCE / "test.json").exists(), reason="../shared/data/ier absent")

FILES = {"train": "train.json", "val": "valid.json", "test": "test.json"}
KNOWN = {"train": (3061, 1), "val": (383, 3), "test": (495, 3)}  # SOURCES.md: uids x sentences per uid


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for name in FILES.values():
        shutil.copy(SOURCE / name, tmp_path / name)
    return tmp_path


def test_splits_and_uid_counts(root: Path):
    dataset = load_dataset("ier", root)
    assert dataset.splits() == ["train", "val", "test"]
    for split, (uids, refs) in KNOWN.items():
        records = json.loads((root / FILES[split]).read_text())
        examples = dataset.examples(split)
        assert len(examples) == uids == len(records)
        assert all(len(e.references) == refs for e in examples)
        assert [e.id for e in examples] == [r["uid"] for r in records]
        assert [list(e.references) for e in examples] == [r["sents"] for r in records]
        assert all(e.tags["source"] == e.id.split("_")[0] for e in examples)
    test = dataset.examples("test")
    assert len({(e.before, e.after) for e in test}) == 446  # the unit is the uid, not the image pair
    assert test[0].before == root / "images" / json.loads((root / "test.json").read_text())[0]["img0"]


def _placeholder(path: Path) -> None:
    suffix = path.suffix.lower()
    img = Image.new("RGB", (6, 5), (200, 10, 10))
    if suffix == ".png":
        img.convert("RGBA").save(path, format="PNG")
    elif suffix == ".gif":
        frames = [img.convert("P"), Image.new("RGB", (6, 5), (0, 0, 255)).convert("P")]
        frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    else:
        img.save(path, format="JPEG")


def test_verify_mixed_formats_and_load_as_rgb(root: Path):
    dataset = load_dataset("ier", root)
    test = dataset.examples("test")
    (root / "images").mkdir()
    paths = {p for e in test for p in (e.before, e.after)}
    for path in paths:
        _placeholder(path)
    assert {p.suffix.lower() for p in paths} >= {".jpg", ".png", ".gif"}
    report = verify(dataset, ["test"], workers=2)
    assert report.ok and report.splits["test"].images == len(paths)
    gif = next(e for e in test if e.before.suffix.lower() == ".gif" or e.after.suffix.lower() == ".gif")
    for path in (gif.before, gif.after):
        img = load_image(path, example_id=gif.id)
        assert img.mode == "RGB" and img.size == (6, 5)
    next(iter(sorted(paths))).unlink()
    assert [p.reason for p in verify(dataset, ["test"]).problems] == ["missing"]


def test_bad_records(tmp_path: Path):
    with pytest.raises(UserError, match="annotation files not found.*valid.json"):
        load_dataset("ier", tmp_path)
    good = {"img0": "a.jpg", "img1": "b.jpg", "sents": ["x"], "uid": "Reddit_1"}
    (tmp_path / "test.json").write_text(json.dumps([good, good]))
    with pytest.raises(UserError, match="uid Reddit_1 occurs twice"):
        load_dataset("ier", tmp_path).examples("test")
    (tmp_path / "test.json").write_text(json.dumps([{**good, "uid": ""}]))
    with pytest.raises(UserError, match="record 0: uid '' is not a non-empty string"):
        load_dataset("ier", tmp_path).examples("test")
    (tmp_path / "test.json").write_text(json.dumps([{"img0": "a.jpg", "sents": []}]))
    with pytest.raises(UserError, match="missing key"):
        load_dataset("ier", tmp_path).examples("test")
    (tmp_path / "test.json").write_text(json.dumps([{**good, "img1": "../../etc/passwd"}]))
    with pytest.raises(UserError, match="not a file name under images/"):
        load_dataset("ier", tmp_path).examples("test")
    with pytest.raises(UserError, match="unknown split 'valid'"):
        load_dataset("ier", tmp_path).examples("valid")
