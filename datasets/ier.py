"""Image-Editing-Request, IER (Tan, Dernoncourt, Lin, Bui, Bansal, ACL 2019).

One example per uid (``Reddit_<n>`` / ``Zhopped_<n>``), in file order; the file `valid.json` is the split ``val``.
The unit of evaluation is the uid, not the image pair: 495 test uids share only 446 distinct pairs. Images may be jpg,
jpeg, png or gif (first frame), RGBA or palette: `idcbench.data.load_image` converts them all to RGB.
Tags: ``source`` (``Reddit`` | ``Zhopped``, the uid prefix).

>>> IER.info.name
'ier'
"""

from __future__ import annotations

from pathlib import Path

from idcbench.data import DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.protocol import Protocol
from idcbench.registry import DATASETS

from ._common import Loader, expect_dict, expect_list, expect_strings, read_annotations

# split name -> annotation file(s), the official name first
FILES = {"train": ("train.json",), "val": ("valid.json", "val.json"), "test": ("test.json",)}

LAYOUT = """\
train.json, valid.json, test.json  [{"img0": before file, "img1": after file, "sents": [str, ...],
                                     "uid": "Reddit_<n>" | "Zhopped_<n>"}, ...]   (valid.json is the split "val")
images/<img0>, images/<img1>       jpg, jpeg, png or gif (first frame); RGBA and palette images are converted to RGB"""


PROTOCOL = Protocol(
    instruction=(
        'The first image is a photo before editing and the second image is the same photo after editing. '
        'Write the edit instruction that turns the first image into the second, as one short imperative '
        'sentence.'
    ),
)


class IER(Loader):
    """Image-Editing-Request: photo pairs with the editing request that turns one into the other (ACL 2019)."""

    info = DatasetInfo(
        name="ier",
        title="Image-Editing-Request (IER)",
        citation="Hao Tan, Franck Dernoncourt, Zhe Lin, Trung Bui, Mohit Bansal. Expressing Visual Relationships via "
        "Language. ACL 2019.",
        source="https://github.com/airsplay/VisualRelationships (annotations in dataset/adobe/; the images are "
        "linked from its README): put the three JSON files and images/ under the data root",
        layout=LAYOUT,
        protocol="One example per uid (test 495 uids x 3 references over 446 distinct image pairs; val 383 x 3; "
        "train 3,061 x 1).",
    )
    protocols = (PROTOCOL,)
    expected = "train.json, valid.json, test.json and images/"

    def _file(self, split: str) -> Path | None:
        for name in FILES[split]:
            if (self.root / name).is_file():
                return self.root / name
        return None

    def _check_root(self) -> None:
        if not self.splits():
            raise self.missing(self.root / "test.json", "annotation files")

    def splits(self) -> list[str]:
        return [s for s in FILES if self._file(s) is not None]

    def _build(self, split: str) -> list[Example]:
        path = self._file(split)
        assert path is not None  # check_split ran
        records = expect_list(read_annotations(path, "IER annotation file"), str(path),
                              'a list of {"img0", "img1", "sents", "uid"} records')
        images = self.root / "images"
        examples: dict[str, Example] = {}
        for k, record in enumerate(records):
            where = f"{path}: record {k}"
            record = expect_dict(record, where, 'a record {"img0", "img1", "sents", "uid"}')
            missing = [key for key in ("img0", "img1", "sents", "uid") if key not in record]
            if missing:
                raise UserError(f"{where}: missing key(s) {', '.join(missing)}")
            uid, img0, img1 = record["uid"], record["img0"], record["img1"]
            if not isinstance(uid, str) or not uid.strip():
                raise UserError(f"{where}: uid {uid!r} is not a non-empty string")
            for name in (img0, img1):
                if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
                    raise UserError(f"{where} (uid {uid}): image name {name!r} is not a file name under images/")
            if uid in examples:
                raise UserError(f"{where}: uid {uid} occurs twice; each uid is one evaluation unit")
            refs = tuple(expect_strings(record["sents"], f"{where} (uid {uid})"))
            examples[uid] = Example(uid, images / img0, images / img1, refs, {"source": uid.split("_")[0]})
        return list(examples.values())


DATASETS.add("ier", IER, description=IER.__doc__.strip().split("\n")[0])
