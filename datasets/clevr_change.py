"""CLEVR-Change (Park, Darrell, Rohrbach, "Robust Change Captioning", ICCV 2019).

Each scene id of a split gives two examples, with the ids of the official RCC tooling (also used by CLIP4IDC):
``"%06d.png"`` = (before, semantic change) with the change captions, ``"%06d.png_n"`` = (before, distractor) with the
no-change captions. Tags: ``kind`` (``semantic`` | ``distractor``), ``scene`` (``"%06d"``, shared by the two examples
of one scene, e.g. for CLIP4IDC's pairing) and, on semantic examples, ``type`` (the `type_mapping.json` key: color,
material, add, drop, move).

Subsets, each scored as its own corpus: ``total``, ``semantic``, ``distractor``, one per change type (semantic pairs
only) and, when `change_captions_by_IOU.json` exists, ``hard-iou``: the semantic pairs of the 25 % lowest-IoU ids of
the split (``int(n * 0.25)`` ids, stable sort by IoU, exactly as the RCC evaluation script).

>>> CLEVRChange.info.name
'clevr-change'
"""

from __future__ import annotations

import re
from functools import cached_property

from idcbench.data import CHANGE_TYPES, DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.protocol import Protocol, Section
from idcbench.registry import DATASETS

from ._common import Loader, expect_dict, expect_list, expect_strings, parse_int_id, read_annotations

HARD_IOU_FRACTION = 0.25
_TYPE_ID = re.compile(r"^(\d+)\.png$")
# every spelling of an example id that other CLEVR-Change code writes (see `CLEVRChange.id_key`)
_ANY_ID = re.compile(r"(?:CLEVR_(?P<prefix>default|semantic|nonsemantic)_)?(?P<scene>\d+)(?:\.png)?(?P<n>_n)?")

LAYOUT = """\
images/CLEVR_default_%06d.png          before (480x320 RGBA in the official release)
sc_images/CLEVR_semantic_%06d.png      after, with a semantic change
nsc_images/CLEVR_nonsemantic_%06d.png  after, distractor only (viewpoint / illumination change)
change_captions.json                   {"CLEVR_default_%06d.png": [caption, ...]}
no_change_captions.json                {"CLEVR_default_%06d.png": [caption, ...]}
splits.json                            {"train": [int], "val": [int], "test": [int]}
type_mapping.json                      {"color"|"material"|"add"|"drop"|"move": ["%06d.png", ...]}
change_captions_by_IOU.json            {"<int id>": IoU}   (optional: the hard-iou subset)"""


# Scored as every paper does (pycocoevalcap's COCO protocol), with the tables of the papers: CIDEr-D per change type
# and semantic change vs distractor.
PROTOCOL = Protocol(
    sections=(
        Section("types", "CIDEr-D per change type", CHANGE_TYPES, extra=("distractor",), others=True,
                note="CIDEr-D x100 on each subset, each scored as its own corpus."),
        Section("kinds", "semantic change vs distractor", ("semantic", "distractor"), all_metrics=True,
                note="Semantic = pairs with a real change; distractor = pairs without one (viewpoint or lighting "
                "changes only)."),
    ),
    instruction=(
        'The first image shows a scene of objects before a change and the second image shows the same '
        'scene after it. The camera position or lighting may differ slightly; that is not a change. In '
        'one short sentence, say what changed among the objects (an object changed its colour or '
        'material, was added, dropped or moved), or say that nothing has changed.'
    ),
)


class CLEVRChange(Loader):
    """CLEVR-Change: 39,803 synthetic scenes, each with a semantic change and a distractor (ICCV 2019)."""

    info = DatasetInfo(
        name="clevr-change",
        title="CLEVR-Change",
        citation="Dong Huk Park, Trevor Darrell, Anna Rohrbach. Robust Change Captioning. ICCV 2019.",
        source="https://github.com/Seth-Park/RobustChangeCaptioning (clevr_change.tar.gz, linked from its README); "
        "unpack it so that the data root holds the folders and files below",
        layout=LAYOUT,
        protocol="Two pairs per scene id: '%06d.png' (semantic, change captions) and '%06d.png_n' (distractor, "
        "no-change captions); test 3,985 ids -> 7,970 pairs. Subsets are scored as separate corpora: total, "
        "semantic, distractor, color, material (papers: texture), add, drop, move, hard-iou.",
    )
    protocols = (PROTOCOL,)
    expected = ("splits.json, type_mapping.json, change_captions.json, no_change_captions.json, images/, "
                "sc_images/, nsc_images/")
    required = ("splits.json", "type_mapping.json", "change_captions.json", "no_change_captions.json")

    def _check_root(self) -> None:
        for name in self.required:
            if not (self.root / name).is_file():
                raise self.missing(self.root / name, "annotation file")

    # ------------------------------------------------------------------------------------------ parsed annotations
    @cached_property
    def _splits(self) -> dict[str, list[int]]:
        path = self.root / "splits.json"
        raw = expect_dict(read_annotations(path, "CLEVR-Change splits file"), str(path), "{split: [scene ids]}")
        splits = {}
        for split, ids in raw.items():
            ids = expect_list(ids, f"{path}: split {split!r}", "a list of scene ids")
            splits[split] = [parse_int_id(v, f"{path}: {split}[{k}]", "scene id") for k, v in enumerate(ids)]
        return splits

    @cached_property
    def _types(self) -> dict[int, str]:
        path = self.root / "type_mapping.json"
        raw = expect_dict(read_annotations(path, "CLEVR-Change type mapping"), str(path), '{type: ["%06d.png", ...]}')
        types: dict[int, str] = {}
        for change_type, names in raw.items():
            for k, name in enumerate(expect_list(names, f"{path}: {change_type!r}", "a list of '%06d.png' ids")):
                m = _TYPE_ID.match(name) if isinstance(name, str) else None
                if m is None:
                    raise UserError(f"{path}: {change_type}[{k}]: {name!r} is not a scene id like '000123.png'")
                scene = int(m.group(1))
                if scene in types and types[scene] != change_type:
                    raise UserError(f"{path}: scene {name} is listed under both {types[scene]!r} and {change_type!r}")
                types[scene] = change_type
        return types

    @cached_property
    def _change_captions(self) -> dict:
        path = self.root / "change_captions.json"
        return expect_dict(read_annotations(path, "CLEVR-Change change captions"), str(path), "{image: [captions]}")

    @cached_property
    def _no_change_captions(self) -> dict:
        path = self.root / "no_change_captions.json"
        return expect_dict(read_annotations(path, "CLEVR-Change no-change captions"), str(path), "{image: [captions]}")

    @cached_property
    def _ious(self) -> dict[int, float] | None:
        path = self.root / "change_captions_by_IOU.json"
        if not path.exists():
            return None
        raw = expect_dict(read_annotations(path, "CLEVR-Change IoU file"), str(path), "{scene id: IoU}")
        ious = {}
        for key, value in raw.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{path}: scene {key!r}: IoU {value!r} is not a number")
            ious[parse_int_id(key, str(path), "scene id")] = float(value)
        return ious

    # ------------------------------------------------------------------------------------------------ Dataset API
    def splits(self) -> list[str]:
        return list(self._splits)

    def scene_ids(self, split: str) -> list[int]:
        """The integer scene ids of `split`, in the order of `splits.json`."""
        self.check_split(split)
        return self._splits[split]

    def _captions(self, table: dict, file: str, scene: int, split: str) -> tuple[str, ...]:
        key = f"CLEVR_default_{scene:06d}.png"
        if key not in table:
            raise UserError(f"{self.root / file}: no captions for {key} (scene {scene} of split {split!r}); "
                            "the caption files and splits.json come from different releases?")
        return tuple(expect_strings(table[key], f"{self.root / file}: {key}"))

    def _build(self, split: str) -> list[Example]:
        images, semantic, distractor = self.root / "images", self.root / "sc_images", self.root / "nsc_images"
        types, change, no_change = self._types, self._change_captions, self._no_change_captions
        examples = []
        for scene in self._splits[split]:
            if scene not in types:
                raise UserError(f"{self.root / 'type_mapping.json'}: scene {scene:06d}.png of split {split!r} has "
                                "no change type")
            sid = f"{scene:06d}"
            before = images / f"CLEVR_default_{sid}.png"
            examples.append(Example(
                f"{sid}.png", before, semantic / f"CLEVR_semantic_{sid}.png",
                self._captions(change, "change_captions.json", scene, split),
                {"kind": "semantic", "type": types[scene], "scene": sid},
            ))
            examples.append(Example(
                f"{sid}.png_n", before, distractor / f"CLEVR_nonsemantic_{sid}.png",
                self._captions(no_change, "no_change_captions.json", scene, split),
                {"kind": "distractor", "scene": sid},
            ))
        return examples

    def id_key(self, example_id: str) -> str:
        """``"000123.png"``, ``"123"``, ``"CLEVR_default_000123.png"``, ``"CLEVR_semantic_000123.png"`` -> ``"000123"``;
        ``"000123.png_n"``, ``"000123_n"``, ``"CLEVR_nonsemantic_000123.png"`` -> ``"000123_n"``; other ids as they are.

        >>> CLEVRChange.id_key(None, "CLEVR_default_000123.png"), CLEVRChange.id_key(None, "123.png_n")
        ('000123', '000123_n')
        """
        m = _ANY_ID.fullmatch(example_id)
        if m is None:
            return example_id
        distractor = m["prefix"] == "nonsemantic" or m["n"] is not None
        return f"{int(m['scene']):06d}" + ("_n" if distractor else "")

    def subsets(self, split: str) -> dict[str, list[str]]:
        examples = self.examples(split)
        subsets = {
            "total": [e.id for e in examples],
            "semantic": [e.id for e in examples if e.tags["kind"] == "semantic"],
            "distractor": [e.id for e in examples if e.tags["kind"] == "distractor"],
        }
        present = set(self._types[s] for s in self._splits[split])
        known = [t for t in CHANGE_TYPES if t in present]  # the papers' order, then any other keys of the file
        for change_type in known + sorted(present - set(known)):
            subsets[change_type] = [e.id for e in examples if e.tags.get("type") == change_type]
        hard = self.hard_iou_ids(split)
        if hard is not None:
            subsets["hard-iou"] = hard
        return subsets

    def hard_iou_ids(self, split: str, fraction: float = HARD_IOU_FRACTION) -> list[str] | None:
        """Semantic ids of the `fraction` lowest-IoU scenes of `split` (None without `change_captions_by_IOU.json`)."""
        ious = self._ious
        if ious is None:
            return None
        ids = self.scene_ids(split)
        missing = [i for i in ids if i not in ious]
        if missing:
            raise UserError(f"{self.root / 'change_captions_by_IOU.json'}: no IoU for scene {missing[0]} of split "
                            f"{split!r} ({len(missing)} missing)")
        hardest = set(sorted(ids, key=lambda i: ious[i])[: int(len(ids) * fraction)])
        return [f"{i:06d}.png" for i in ids if i in hardest]


DATASETS.add("clevr-change", CLEVRChange, description=CLEVRChange.__doc__.strip().split("\n")[0])
