"""Spot-the-Diff multi-change loader on CARD's real release files (../shared/data/spot-the-diff/multi-change, skipped
when absent): counts, one paragraph reference per pair, ids, images, and how the paragraphs relate to the standard
annotation files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from idcbench.data import load_dataset
from idcbench.datasets.describe import summarize
from idcbench.errors import UserError
from idcbench.ids import align_ids

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "spot-the-diff"
SOURCE = SHARED / "multi-change"
pytestmark = pytest.mark.skipif(not (SOURCE / "splits.json").exists(), reason="../shared/data/spot-the-diff absent")

PAIRS = {"train": 8566, "val": 1493, "test": 1270}  # SOURCES.md
FILES = ("change_multi_captions.json", "change_multi_captions_reformat.json", "splits.json")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(SOURCE / name, tmp_path / name)
    return tmp_path


def test_counts_ids_and_one_paragraph_per_pair(root: Path):
    dataset = load_dataset("spot-the-diff-multi", root)
    splits = json.loads((root / "splits.json").read_text())
    captions = json.loads((root / "change_multi_captions.json").read_text())
    assert dataset.splits() == list(PAIRS)
    for split, n in PAIRS.items():
        examples = dataset.examples(split)
        assert len(examples) == n
        assert [e.id for e in examples] == [f"{i:06d}.png" for i in splits[split]]  # CARD's ids, splits.json order
        assert all(len(e.references) == 1 for e in examples)
        assert {e.id: list(e.references) for e in examples} == {f"{i:06d}.png": captions[f"{i:06d}.png"]
                                                                for i in splits[split]}
        assert dataset.subsets(split) == {"total": [e.id for e in examples]}
    e = dataset.examples("test")[0]
    img_id = splits["test"][0]
    assert (e.before, e.after) == (root / "images" / f"{img_id}.png", root / "images" / f"{img_id}_2.png")
    summary = summarize(dataset)
    assert {s: (v["examples"], v["references"]) for s, v in summary.items()} == {s: (n, n) for s, n in PAIRS.items()}
    assert {s: v["empty_references"] for s, v in summary.items()} == {"train": 37, "val": 4, "test": 7}


def test_same_pairs_and_images_as_the_standard_protocol(root: Path):
    """Same pairs as `spot-the-diff`, same image files; each paragraph is that loader's references of the pair,
    stripped, joined with ". " and cut after 60 words (CARD's file; up to a trailing space)."""
    for name in ("train.json", "val.json", "test.json"):
        shutil.copy(SHARED / name, root / name)
    multi = load_dataset("spot-the-diff-multi", root)
    standard = load_dataset("spot-the-diff", root)
    for split in PAIRS:
        by_key = {multi.id_key(e.id): e for e in multi.examples(split)}
        assert set(by_key) == {standard.id_key(e.id) for e in standard.examples(split)}
        for e in standard.examples(split):
            m = by_key[e.id]
            assert (m.before, m.after) == (e.before, e.after)
            paragraph = " ".join(". ".join(s.strip() for s in e.references).split()[:60])
            assert m.references[0].rstrip(" ") == paragraph
    assert max(len(e.references[0].split()) for s in PAIRS for e in multi.examples(s)) == 60


def test_coco_form_alone_and_the_multi_change_folder(root: Path, tmp_path: Path):
    full = load_dataset("spot-the-diff-multi", root)
    (root / "change_multi_captions.json").unlink()
    coco = load_dataset("spot-the-diff-multi", root)
    for split in PAIRS:
        assert coco.examples(split) == full.examples(split)
    beside = tmp_path / "beside"
    (beside / "multi-change").mkdir(parents=True)
    for name in FILES:
        shutil.copy(SOURCE / name, beside / "multi-change" / name)
    nested = load_dataset("spot-the-diff-multi", beside)
    assert nested.card_dir == beside / "multi-change"
    assert nested.examples("test")[0].before.parent == beside / "images"  # Spot-the-Diff's images at the root


def test_ids_other_code_writes(root: Path):
    dataset = load_dataset("spot-the-diff-multi", root)
    ids = [e.id for e in dataset.examples("test")]
    first, second = json.loads((root / "splits.json").read_text())["test"][:2]
    aligned = align_ids({f"{first}.png": "a", str(second): "b", "999999.png": "c"}, ids, key=dataset.id_key)
    assert aligned == {f"{first:06d}.png": "a", f"{second:06d}.png": "b", "999999.png": "c"}  # the last: no pair
    with pytest.raises(UserError, match="are both id"):
        align_ids({str(first): "a", f"{first:06d}": "b"}, ids, key=dataset.id_key)


def test_bad_files_are_one_line_errors(tmp_path: Path):
    with pytest.raises(UserError, match="CARD's split file not found"):
        load_dataset("spot-the-diff-multi", tmp_path)
    (tmp_path / "splits.json").write_text(json.dumps({"test": [1, 2]}))
    with pytest.raises(UserError, match="caption file not found: .*change_multi_captions.json"):
        load_dataset("spot-the-diff-multi", tmp_path)
    (tmp_path / "change_multi_captions.json").write_text(json.dumps({"000001.png": ["a car left"]}))
    with pytest.raises(UserError, match=r"no caption for 000002.png \(img id 2 of split 'test'\)"):
        load_dataset("spot-the-diff-multi", tmp_path).examples("test")
    (tmp_path / "splits.json").write_text(json.dumps({"test": [1, "x"]}))
    with pytest.raises(UserError, match=r"test\[1\]: img id 'x' is not a non-negative integer"):
        load_dataset("spot-the-diff-multi", tmp_path).splits()
