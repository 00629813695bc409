"""``pairs:PATH``: a user's own image pairs, one JSONL or CSV file, accepted wherever a dataset name is.

One row per pair: ``before`` and ``after`` (image paths, relative to the file's folder, or absolute), ``captions``
(the references), ``split`` (``train``, ``val``, ``test`` or any other name; ``Test`` or ``train `` is refused as a
misspelt standard split), optionally ``id`` (default: the row's line number); every other column is a tag (e.g.
``kind``, ``type``), and a tag with at most 20 distinct values in a split gives one subset per value, named
``tag=value``, scored as its own corpus beside ``total``. In JSONL ``captions`` is a list of strings (or one string);
in CSV a cell is one caption, or a JSON list (``["a", "b"]``) for several.
A relative PATH is resolved against ``--data-root`` when given, else the current folder.

Every problem is one line naming ``file:line``: a missing column, a bad value, a repeated id and, when the dataset
is loaded for a run or a scoring, a missing image (``idcbench data verify pairs:PATH`` lists them all). The run
spec hashes the file's bytes (`Pairs.fingerprint`), so editing any row makes a new run.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "mine.csv").write_text("before,after,captions,split,kind\\n"
...     'a.png,b.png,the cube moved,test,semantic\\nc.png,c.png,"[""no change"", ""nothing""]",test,distractor\\n')
>>> ds = open_pairs("mine.csv", folder)
>>> [(e.id, e.references, dict(e.tags)) for e in ds.examples("test")]
[('2', ('the cube moved',), {'kind': 'semantic'}), ('3', ('no change', 'nothing'), {'kind': 'distractor'})]
>>> ds.subsets("test")
{'total': ['2', '3'], 'kind=distractor': ['3'], 'kind=semantic': ['2']}
>>> ds.location("3") == f"{folder / 'mine.csv'}:3"
True
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Iterator

from idcbench.data import Dataset, DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.files import decode_utf8, json_lines
from idcbench.registry import DATASETS

REQUIRED = ("before", "after", "captions", "split")
MAX_SUBSET_VALUES = 20  # a tag with more distinct values in a split (e.g. a URL) gives no subsets
STANDARD_SPLITS = ("train", "val", "test")

LAYOUT = """\
PATH.jsonl   one JSON object per line: {"before": "img/0001_a.png", "after": "img/0001_b.png",
             "captions": ["the red cube moved", ...], "split": "test", "id": "0001" (optional), "kind": ... (tags)}
PATH.csv     header before,after,captions,split[,id][,tag columns]; a captions cell is one caption or a JSON list
images       wherever the rows point: paths relative to PATH's folder, or absolute"""

COLUMNS_HINT = f"required: {', '.join(REQUIRED)}; optional: id; any other column is a tag"


class PairsLoader:
    """The loader that ``DATASETS.get("pairs:PATH")`` returns: `load` (checks every image exists) and `open` (not)."""

    def __init__(self, path: str):
        if not path.strip():
            raise UserError("pairs:PATH needs a file, e.g. --dataset pairs:data/mine.jsonl")
        self.path = path
        self.info = DatasetInfo(
            name=f"pairs:{path}", title=f"your own pairs ({path})",
            citation="your own data: cite where the images and captions come from",
            source=f"the local file {path} (a relative path is resolved against --data-root, else the current "
                   "folder); nothing to download",
            layout=LAYOUT,
            protocol="Every split the file names; subsets: total and tag=value for each tag with at most "
                     f"{MAX_SUBSET_VALUES} values in the split; scored like any dataset (pycocoevalcap's PTB tokenizer).",
        )

    def load(self, root: str | Path) -> "Pairs":
        dataset = self.open(root)
        dataset.check_images()  # parses every row, then stats every image
        return dataset

    def open(self, root: str | Path) -> "Pairs":
        root = Path(root).expanduser()
        file = Path(self.path).expanduser()
        return Pairs(root, file if file.is_absolute() else root / file, self.info)


def open_pairs(path: str, root: str | Path) -> "Pairs":
    """The dataset ``pairs:PATH`` read from `root`, without checking its images."""
    return PairsLoader(path).open(root)


class Pairs(Dataset):
    """A pairs file: every row is checked on first use (`PairsLoader.load` does it, before any model is built)."""

    info: DatasetInfo

    def __init__(self, root: Path, file: Path, info: DatasetInfo):
        super().__init__(root)
        self.file, self.info = file, info
        if not file.is_file():
            where = "not found" if not file.exists() else "is not a file"
            raise UserError(f"{info.name}: {file} {where} (a relative path is resolved against --data-root, else the "
                            f"current folder; `idcbench data info {info.name}` shows the format)")
        self._parsed: tuple[str, dict[str, list[Example]], dict[str, int]] | None = None

    def _parse(self) -> tuple[str, dict[str, list[Example]], dict[str, int]]:
        """(sha256 of the file, split -> examples, id -> line), read on first use: `idcbench data info` describes a
        file it cannot parse and then reports the first bad row."""
        if self._parsed is not None:
            return self._parsed
        file = self.file
        if file.suffix.lower() not in (".jsonl", ".csv"):
            raise UserError(f"{file}: expected a .jsonl or .csv file of pairs ({COLUMNS_HINT})")
        raw = file.read_bytes()
        text = decode_utf8(file, raw)
        rows = _jsonl_rows(file, text) if file.suffix.lower() == ".jsonl" else _csv_rows(file, text)
        splits: dict[str, list[Example]] = {}
        lines: dict[str, int] = {}
        for line, row in rows:
            example = self._example(line, row)
            if example.id in lines:
                raise UserError(f"{file}:{line}: id {example.id!r} is already used on line {lines[example.id]}; "
                                "ids must be unique in the file")
            lines[example.id] = line
            splits.setdefault(row["split"], []).append(example)
        if not splits:
            raise UserError(f"{file}: no pairs ({COLUMNS_HINT})")
        self._parsed = (hashlib.sha256(raw).hexdigest(), splits, lines)
        return self._parsed

    def _example(self, line: int, row: dict[str, Any]) -> Example:
        missing = [c for c in REQUIRED if c not in row]
        if missing:
            raise UserError(f"{self.file}:{line}: missing column(s) {', '.join(missing)} "
                            f"(found: {', '.join(sorted(row)) or 'none'}; {COLUMNS_HINT})")
        images = [self._image(line, row, key) for key in ("before", "after")]
        split = row["split"]
        if not isinstance(split, str) or not split.strip():
            raise UserError(f"{self.file}:{line}: split {split!r} is not a non-empty name (e.g. train, val, test)")
        if split not in STANDARD_SPLITS and split.strip().lower() in STANDARD_SPLITS:  # else its own split, silently
            raise UserError(f"{self.file}:{line}: split {split!r}: write {split.strip().lower()!r} (split names are "
                            f"exact; the standard ones are {', '.join(STANDARD_SPLITS)})")
        captions = _captions(row["captions"], f"{self.file}:{line}")
        ident = row.get("id", str(line))
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if not isinstance(ident, str) or not ident.strip():
            raise UserError(f"{self.file}:{line}: id {ident!r} is not a non-empty string or integer")
        tags = {}
        for key, value in row.items():
            if key in REQUIRED or key == "id":
                continue
            if isinstance(value, bool):
                value = str(value).lower()
            if not isinstance(value, (str, int, float)):
                raise UserError(f"{self.file}:{line}: tag {key!r} is {type(value).__name__}; tags are strings or "
                                "numbers (a nested value cannot name a subset)")
            tags[key] = str(value)
        return Example(ident, images[0], images[1], tuple(captions), tags)

    def _image(self, line: int, row: dict[str, Any], key: str) -> Path:
        value = row[key]
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{self.file}:{line}: {key} {value!r} is not an image path")
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.file.parent / path

    def check_images(self) -> None:
        """Raise on the first image that does not exist (a stat each; `idcbench data verify` decodes and lists all)."""
        seen: set[Path] = set()
        for examples in self._parse()[1].values():
            for e in examples:
                for which, path in (("before", e.before), ("after", e.after)):
                    if path in seen:
                        continue
                    if not path.is_file():
                        raise UserError(f"{self.location(e.id)}: {which} image not found: {path} (paths are relative "
                                        f"to {self.file.parent}; `idcbench data verify {self.info.name}` lists every "
                                        "missing image)")
                    seen.add(path)

    def splits(self) -> list[str]:
        splits = self._parse()[1]
        return [s for s in STANDARD_SPLITS if s in splits] + [s for s in splits if s not in STANDARD_SPLITS]

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        return self._parse()[1][split]

    def subsets(self, split: str) -> dict[str, list[str]]:
        examples = self.examples(split)
        subsets = {"total": [e.id for e in examples]}
        for key in sorted({k for e in examples for k in e.tags}):
            values = sorted({e.tags[key] for e in examples if key in e.tags})
            if len(values) <= MAX_SUBSET_VALUES:
                for value in values:
                    subsets[f"{key}={value}"] = [e.id for e in examples if e.tags.get(key) == value]
        return subsets

    def fingerprint(self) -> str:
        return self._parse()[0]

    def location(self, example_id: str) -> str | None:
        line = self._parse()[2].get(example_id)
        return f"{self.file}:{line}" if line is not None else None


def _captions(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: captions {text[:40]!r} starts with '[' but is not a JSON list ({e.msg})") from None
        else:
            value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise UserError(f"{where}: captions must be a non-empty list of strings (or one string), found {value!r:.60}")
    if not any(c.strip() for c in value):
        raise UserError(f"{where}: every caption is empty; give at least one reference")
    return value


def _jsonl_rows(file: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, row in json_lines(file, text):
        if not isinstance(row, dict):
            raise UserError(f"{file}:{line}: expected a JSON object ({COLUMNS_HINT}), found {type(row).__name__}")
        yield line, row


def _csv_rows(file: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{file}: empty; the first line is the header ({COLUMNS_HINT})") from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(f"{file}:1: missing column(s) {', '.join(missing)} in the header "
                        f"(found: {', '.join(header)}; {COLUMNS_HINT})")
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1  # a quoted caption may span lines: the row starts where it starts
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise UserError(f"{file}:{line}: {len(cells)} cells, the header has {len(header)} ({', '.join(header)})")
        yield line, {k: v for k, v in zip(header, cells) if k in REQUIRED or v.strip()}  # an empty id / tag: none


DATASETS.add_scheme("pairs", PairsLoader, description="Your own pairs: a JSONL or CSV file of before, after, captions, "
                    "split (+ tags); e.g. --dataset pairs:data/mine.jsonl", argument="PATH")
