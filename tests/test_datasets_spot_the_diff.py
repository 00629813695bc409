"""Spot-the-Diff loader on the real annotation files: the standard protocol's counts, references and errors."""

import json
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
from PIL import Image

from idcbench.data import load_dataset, load_image
from idcbench.datasets.describe import summarize, verify
from idcbench.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCE = SHARED / "spot-the-diff"
pytestmark = pytest.mark.skipif(not (SOURCE / "test.json").exists(), reason="../shared/data/spot-the-diff absent")

# SOURCES.md: records / unique img_id / sentences per split
KNOWN = {"train": (9524, 8566, 17676), "val": (1634, 1493, 3310), "test": (1404, 1270, 2107)}


def brute_force(path: Path) -> "OrderedDict[str, list[str]]":
    grouped: OrderedDict[str, list[str]] = OrderedDict()
    for record in json.loads(path.read_text()):
        grouped.setdefault(record["img_id"], []).extend(record["sentences"])
    return grouped


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for split in KNOWN:
        shutil.copy(SOURCE / f"{split}.json", tmp_path / f"{split}.json")
    return tmp_path


@pytest.mark.parametrize("split", list(KNOWN))
def test_standard_protocol_counts_and_references(root: Path, split: str):
    records, pairs, sentences = KNOWN[split]
    assert len(json.loads((root / f"{split}.json").read_text())) == records
    dataset = load_dataset("spot-the-diff", root)
    examples = dataset.examples(split)
    expected = brute_force(root / f"{split}.json")
    assert len(examples) == pairs == len(expected)
    assert sum(len(e.references) for e in examples) == sentences
    assert [e.id for e in examples] == list(expected)  # img_id strings, first-occurrence order
    assert {e.id: list(e.references) for e in examples} == expected
    e = examples[0]
    assert (e.before, e.after) == (root / "images" / f"{e.id}.png", root / "images" / f"{e.id}_2.png")
    assert dataset.subsets(split) == {"total": [x.id for x in examples]}


def test_empty_references_are_kept(root: Path):
    test = load_dataset("spot-the-diff", root).examples("test")
    only_empty = [e for e in test if all(not r.strip() for r in e.references)]
    assert len(only_empty) == 7  # SOURCES.md: 7 test pairs have only an empty sentence
    assert all(e.references == ("",) for e in only_empty)


def test_summary_matches_counts(root: Path):
    summary = summarize(load_dataset("spot-the-diff", root))
    assert {s: (v["examples"], v["references"]) for s, v in summary.items()} == {s: k[1:] for s, k in KNOWN.items()}


def test_annotations_folder_layout(tmp_path: Path):
    (tmp_path / "annotations").mkdir()
    shutil.copy(SOURCE / "test.json", tmp_path / "annotations" / "test.json")
    (tmp_path / "resized_images").mkdir()
    dataset = load_dataset("spot-the-diff", tmp_path)
    assert dataset.splits() == ["test"]
    assert len(dataset.examples("test")) == 1270
    assert dataset.examples("test")[0].before == tmp_path / "resized_images" / "256.png"
    with pytest.raises(UserError, match="unknown split 'val'"):
        dataset.examples("val")


def test_verify_and_load_errors_with_placeholder_images(root: Path):
    dataset = load_dataset("spot-the-diff", root)
    test = dataset.examples("test")
    (root / "images").mkdir()
    for e in test:
        for path in (e.before, e.after):
            Image.new("RGB", (4, 4), (10, 20, 30)).save(path)
    report = verify(dataset, ["test"], workers=2)
    assert report.ok and report.splits["test"].images == 2 * 1270
    test[0].after.unlink()
    test[1].before.write_bytes(b"not a png")
    report = verify(dataset, ["test"], workers=2)
    assert not report.ok
    assert {(p.example_id, p.reason) for p in report.problems} == {(test[0].id, "missing"), (test[1].id, "corrupt")}
    with pytest.raises(UserError) as err:
        load_image(test[0].after, example_id=test[0].id)
    assert test[0].id in str(err.value) and str(test[0].after) in str(err.value)


def test_bad_annotations_are_one_line_errors(tmp_path: Path):
    with pytest.raises(UserError, match="data root .* not found.*idcbench data info spot-the-diff"):
        load_dataset("spot-the-diff", tmp_path / "nowhere")
    with pytest.raises(UserError, match="annotation files not found"):
        load_dataset("spot-the-diff", tmp_path)
    (tmp_path / "test.json").write_text('[{"img_id": "1", "sentences": ["a"]},\n {"img_id": "2" "sentences": []}]')
    with pytest.raises(UserError, match=r"test\.json: line 2, column \d+: invalid JSON"):
        load_dataset("spot-the-diff", tmp_path).examples("test")
    (tmp_path / "test.json").write_text('[{"img_id": "12a", "sentences": ["a"]}]')
    with pytest.raises(UserError, match="record 0: img_id '12a' is not a non-negative integer"):
        load_dataset("spot-the-diff", tmp_path).examples("test")
    (tmp_path / "test.json").write_text('[{"img_id": "12", "sentences": "a"}]')
    with pytest.raises(UserError, match="expected a list of caption strings"):
        load_dataset("spot-the-diff", tmp_path).examples("test")
