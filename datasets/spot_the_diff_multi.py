"""Spot-the-Diff multi-change (CARD: Tu et al., ACL 2024): Spot-the-Diff's pairs, one paragraph reference each.

CARD's release (tuyunbin/CARD @e9be82f, ``spot-the-diff/``): ``splits.json`` ``{"train" | "val" | "test": [int]}``
(8,566 / 1,493 / 1,270 pairs, the same pairs as the standard splits), ``change_multi_captions.json``
``{"%06d.png": [paragraph]}`` and the same captions in COCO form, ``change_multi_captions_reformat.json``. The
paragraph of a pair is every sentence of every annotator of that pair (Spot-the-Diff's files), stripped, joined with
``". "`` and cut after its first 60 words: that reproduces all 11,329 paragraphs (8 of them carry one trailing space
more). 48 paragraphs are empty; they stay, as in CARD's scoring.

CARD scores with coco-caption's ``COCOEvalCap`` on ``change_multi_captions_reformat.json`` (``utils/eval_utils_spot.py``
``score_generation``, called by ``evaluate_spot.py``): PTB tokenizer, BLEU, METEOR, ROUGE-L, CIDEr-D; the
references are used as they are (the 60-word cut is in the file), hypotheses are not cut (CARD's decoder stops at
its ``seq_length`` of 70). Example ids are written as CARD writes them (``"000076.png"``); the images are
Spot-the-Diff's, found as the `spot-the-diff` loader finds them. Scores are NOT comparable with `spot-the-diff` (several
one-sentence references per pair).

>>> SpotTheDiffMulti.info.name, SpotTheDiffMulti.id_key(None, "76.png")
('spot-the-diff-multi', '76')
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from idcbench.data import DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.ids import file_id_key
from idcbench.protocol import Protocol
from idcbench.registry import DATASETS

from ._common import expect_dict, expect_list, expect_strings, parse_int_id, read_annotations
from .spot_the_diff import SPLITS, SpotTheDiff, pair_images

CAPTIONS = "change_multi_captions.json"
REFORMAT = "change_multi_captions_reformat.json"
SPLITS_FILE = "splits.json"

LAYOUT = """\
splits.json                           {"train" | "val" | "test": [int img_id, ...]}   (CARD's release)
change_multi_captions.json            {"%06d.png": [paragraph]}
  or change_multi_captions_reformat.json   the same in COCO form (images / annotations)
                                      (these files may also sit in multi-change/ under the data root)
images/<img_id>.png                   before: Spot-the-Diff's images (see `idcbench data info spot-the-diff`)
images/<img_id>_2.png                 after   (resized_images/ instead of images/ is accepted)"""


# A paragraph of up to 60 words is the answer: a longer instruction and room for about 100 tokens.
PROTOCOL = Protocol(
    description="CARD's scoring: pycocoevalcap's COCO protocol (PTB tokenizer) against the one paragraph reference",
    instruction=("The two images are frames of the same street scene from a surveillance camera, taken at different "
                 "times. Describe every difference between the first image and the second, one short sentence per "
                 "difference (for example people, cars or objects that appeared, disappeared or moved)."),
    decoding={"max_new_tokens": 128},
)


class SpotTheDiffMulti(SpotTheDiff):
    """Spot-the-Diff multi-change: one paragraph reference per pair (CARD, ACL 2024)."""

    info = DatasetInfo(
        name="spot-the-diff-multi",
        title="Spot-the-Diff multi-change",
        citation="Yunbin Tu, Liang Li, Li Su, Zheng-Jun Zha, Chenggang Yan, Qingming Huang. Context-aware Difference "
        "Distilling for Multi-change Captioning. ACL 2024. Images and sentences: Harsh Jhamtani, Taylor "
        "Berg-Kirkpatrick. Learning to Describe Differences Between Pairs of Similar Images. EMNLP 2018.",
        source="https://github.com/tuyunbin/CARD (spot-the-diff/: splits.json, change_multi_captions.json); the images "
        "are Spot-the-Diff's (https://github.com/harsh19/spot-the-diff): put them under images/ of the same data root",
        layout=LAYOUT,
        protocol="One example per pair, id '%06d.png' as CARD writes it (train / val / test 8,566 / 1,493 / 1,270); "
        "ONE reference: the pair's sentences joined into a paragraph cut at 60 words (48 empty, kept). Scored as "
        "CARD scores it: PTB tokenizer, pycocoevalcap. NOT comparable with spot-the-diff (the standard protocol "
        "scores each pair against its separate sentences).",
    )
    protocols = (PROTOCOL,)
    expected = f"{SPLITS_FILE} and {CAPTIONS} (or {REFORMAT}), at the data root or in multi-change/; images/"

    @cached_property
    def card_dir(self) -> Path:
        """Where CARD's files are: the data root, or its ``multi-change/`` folder."""
        folders = (self.root, self.root / "multi-change")
        for folder in folders:
            if (folder / SPLITS_FILE).is_file() and any((folder / c).is_file() for c in (CAPTIONS, REFORMAT)):
                return folder
        for folder in folders:
            if (folder / SPLITS_FILE).is_file():
                raise self.missing(folder / CAPTIONS, "caption file")
        raise self.missing(self.root / SPLITS_FILE, "CARD's split file")

    def _check_root(self) -> None:
        self.card_dir  # noqa: B018  (raises when CARD's files are not there)

    @cached_property
    def _splits(self) -> dict[str, list[int]]:
        path = self.card_dir / SPLITS_FILE
        raw = expect_dict(read_annotations(path, "CARD splits file"), str(path), "{split: [img ids]}")
        return {split: [parse_int_id(v, f"{path}: {split}[{k}]", "img id")
                        for k, v in enumerate(expect_list(raw[split], f"{path}: {split!r}", "a list of img ids"))]
                for split in SPLITS if split in raw}

    @cached_property
    def _captions(self) -> dict[str, list[str]]:
        """``"%06d.png"`` -> captions, from ``change_multi_captions.json`` or else its COCO form."""
        path = self.card_dir / CAPTIONS
        if path.is_file():
            raw = expect_dict(read_annotations(path, "CARD caption file"), str(path), '{"%06d.png": [paragraph]}')
            return {key: expect_strings(value, f"{path}: {key}") for key, value in raw.items()}
        path = self.card_dir / REFORMAT
        raw = expect_dict(read_annotations(path, "CARD COCO caption file"), str(path), '{"images", "annotations"}')
        captions: dict[str, list[str]] = {}
        for k, a in enumerate(expect_list(raw.get("annotations"), f"{path}: 'annotations'", "a list of annotations")):
            a = expect_dict(a, f"{path}: annotations[{k}]", '{"image_id", "caption"}')
            if not isinstance(a.get("image_id"), str) or not isinstance(a.get("caption"), str):
                raise UserError(f"{path}: annotations[{k}]: needs a string 'image_id' and a string 'caption'")
            captions.setdefault(a["image_id"], []).append(a["caption"])
        return captions

    def splits(self) -> list[str]:
        return list(self._splits)

    def _build(self, split: str) -> list[Example]:
        images, captions = self.image_dir, self._captions
        examples = []
        for img_id in self._splits[split]:
            key = f"{img_id:06d}.png"
            if key not in captions:
                raise UserError(f"{self.card_dir}: no caption for {key} (img id {img_id} of split {split!r}); the "
                                "caption file and splits.json come from different releases?")
            examples.append(Example(key, *pair_images(images, img_id), tuple(captions[key]), {}))
        return examples

    def id_key(self, example_id: str) -> str:
        """``"000076.png"``, ``"76.png"``, ``"000076"``, ``"76"`` -> ``"76"`` (img ids are unique over the splits).

        >>> [SpotTheDiffMulti.id_key(None, i) for i in ("000076.png", "76", "a.png")]
        ['76', '76', 'a']
        """
        key = file_id_key(example_id)
        return str(int(key)) if key.isascii() and key.isdigit() else key


DATASETS.add("spot-the-diff-multi", SpotTheDiffMulti, description=SpotTheDiffMulti.__doc__.strip().split("\n")[0])
