"""Spot-the-Diff (Jhamtani and Berg-Kirkpatrick, EMNLP 2018), standard protocol.

One example per unique `img_id` (first-occurrence order of the annotation file); its references are ALL sentences of
ALL records (annotators) of that img_id, in file order, empty ones kept: test 1,270 examples and 2,107 references,
as scored by CLIP4IDC, DUDA and the authors' own scorer. Example ids are the img_id strings of the files.

>>> SpotTheDiff.info.name
'spot-the-diff'
"""

from __future__ import annotations

from pathlib import Path

from idcbench.data import DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.protocol import Protocol
from idcbench.registry import DATASETS

from ._common import Loader, expect_dict, expect_list, expect_strings, parse_int_id, read_annotations

SPLITS = ("train", "val", "test")

LAYOUT = """\
train.json, val.json, test.json   [{"img_id": "<int>", "sentences": [str, ...]}, ...], one record per annotator
                                   (also accepted under annotations/, the authors' repository layout)
images/<img_id>.png                before (224x224 in the official release)
images/<img_id>_2.png              after  (<img_id>_diff.jpg is not used)
                                   (resized_images/ instead of images/ is accepted: the authors' repository layout)"""


PROTOCOL = Protocol(
    instruction=(
        'The two images are frames of the same street scene from a surveillance camera, taken at '
        'different times. In one short sentence, describe the differences between the first image and the'
        ' second (for example people, cars or objects that appeared, disappeared or moved).'
    ),
)


def pair_images(image_dir: Path, img_id: str | int) -> tuple[Path, Path]:
    """The before and after image of pair `img_id` (`spot-the-diff-multi` reads the same images).

    >>> [str(p) for p in pair_images(Path("images"), 256)]
    ['images/256.png', 'images/256_2.png']
    """
    return image_dir / f"{img_id}.png", image_dir / f"{img_id}_2.png"


class SpotTheDiff(Loader):
    """Spot-the-Diff: street-scene surveillance frames with human difference descriptions (EMNLP 2018)."""

    info = DatasetInfo(
        name="spot-the-diff",
        title="Spot-the-Diff",
        citation="Harsh Jhamtani, Taylor Berg-Kirkpatrick. Learning to Describe Differences Between Pairs of Similar "
        "Images. EMNLP 2018.",
        source="https://github.com/harsh19/spot-the-diff (annotations in data/annotations/; the resized images are "
        "linked from its README): put the three JSON files and images/ under the data root",
        layout=LAYOUT,
        protocol="One example per unique img_id; references = every sentence of every record of that img_id, empty "
        "ones kept (test: 1,270 pairs, 2,107 references). The per-record protocol (1,404 items) gives different "
        "numbers and is not offered; the multi-change one (a paragraph per pair) is the dataset spot-the-diff-multi.",
    )
    protocols = (PROTOCOL,)
    expected = "train.json, val.json, test.json (or annotations/*.json) and images/<img_id>.png, images/<img_id>_2.png"

    @property
    def annotation_dir(self) -> Path:
        for folder in (self.root, self.root / "annotations"):
            if any((folder / f"{s}.json").is_file() for s in SPLITS):
                return folder
        raise self.missing(self.root / "test.json", "annotation files")

    @property
    def image_dir(self) -> Path:
        """``images/``; the authors' repository calls it ``resized_images/`` (used when ``images/`` is absent)."""
        images = self.root / "images"
        if not images.exists() and (self.root / "resized_images").is_dir():
            return self.root / "resized_images"
        return images

    def _check_root(self) -> None:
        self.annotation_dir  # noqa: B018  (raises when there are no annotation files)

    def splits(self) -> list[str]:
        folder = self.annotation_dir
        return [s for s in SPLITS if (folder / f"{s}.json").is_file()]

    def _build(self, split: str) -> list[Example]:
        path = self.annotation_dir / f"{split}.json"
        records = expect_list(read_annotations(path, "Spot-the-Diff annotation file"), str(path),
                              'a list of {"img_id", "sentences"} records')
        sentences: dict[str, list[str]] = {}
        for k, record in enumerate(records):
            where = f"{path}: record {k}"
            record = expect_dict(record, where, 'a record {"img_id", "sentences"}')
            if "img_id" not in record or "sentences" not in record:
                raise UserError(f"{where}: needs the keys 'img_id' and 'sentences', found {sorted(record)}")
            img_id = record["img_id"]
            parse_int_id(img_id, where, "img_id")
            img_id = str(img_id)
            sentences.setdefault(img_id, []).extend(expect_strings(record["sentences"], f"{where} (img_id {img_id})"))
        images = self.image_dir
        return [Example(i, *pair_images(images, i), tuple(refs), {}) for i, refs in sentences.items()]


DATASETS.add("spot-the-diff", SpotTheDiff, description=SpotTheDiff.__doc__.strip().split("\n")[0])
