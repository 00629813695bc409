"""LEVIR-CC (Liu et al., IEEE TGRS 2022): remote-sensing image change captioning, 10,077 pairs x 5 references.

One example per image pair, with the id the authors' code writes: the image file name (``test_000001.png``). Its
references are the authors' tokens joined by spaces, without ``<START>`` / ``<END>``; its tag ``kind`` is ``change``
or ``no-change`` by the authors' rule (the first reference is one of five no-change sentences, see
`levir_cc_protocol`), and the subsets ``change`` / ``no-change`` follow it (test: 964 / 965 pairs).

Three forms of the annotations are read, in this order of preference:

- the authors' release (``LevirCCcaptions.json``): ``{"images": [{"filename": "test_000001.png", "split": "test",
  "sentences": [{"raw": ..., "tokens": [...]}, ...], "changeflag": 0 | 1, ...}, ...]}``. Fields as read by
  Chen-Yang-Liu/RSICC @d1505e5 ``utils.py`` (``split``, ``filename``, ``sentences[].tokens``), Chen-Yang-Liu/PromptCC
  @7b99069 ``create_input_files.py`` (``raw``, ``changeflag``) and Chen-Yang-Liu/Change-Agent @1b0b601
  ``Multi_change/preprocess_data.py`` (``raw``; the split from the file name's prefix). The references are ``raw``
  through that script's ``tokenize``, which is what produced the authors' token files (``tokens`` and ``changeflag``
  are not read; a record without ``split`` takes it from its file name);
- the authors' repository form (Change-Agent ``Multi_change/data/LEVIR_MCI/``, RSCaMa ``data/LEVIR_CC/``):
  ``train.txt`` / ``val.txt`` / ``test.txt`` (one file name a line) and ``tokens/<name without .png>.txt`` (a JSON
  list of the 5 token lists, each wrapped in ``<START>`` / ``<END>``);
- the same assembled into one file, ``levir_cc_tokens.json``: ``{"splits": {split: [file name, ...]}, "tokens":
  {file name: [[token, ...] x 5]}}``.

The vocabulary of the `rsicc` protocol is ``vocab.json`` under the data root when present, else built from the
references of all splits exactly as the authors' ``build_vocab`` does (`Vocabulary.build`).

>>> LevirCC.info.name, LevirCC.id_key(None, "TEST_1.png")
('levir-cc', 'test_000001')
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from dataclasses import dataclass

from idcbench.data import DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.files import decode_utf8
from idcbench.protocol import Protocol, Section
from idcbench.registry import DATASETS

from ._common import Loader, expect_dict, expect_list, expect_strings, read_annotations
from .levir_cc_protocol import (
    CHANGE, DEFAULT_THRESHOLD, NO_CHANGE, S_M_METRICS, SPECIALS, Vocabulary, index_string, is_no_change, tokenize,
)

SPLITS = ("train", "val", "test")
RELEASE = "LevirCCcaptions.json"
ASSEMBLED = "levir_cc_tokens.json"
VOCAB = "vocab.json"
TOKENS = "tokens"
# what the authors' scoring removes from a token list (`<UNK>` stays)
_DROPPED = frozenset((SPECIALS[0], SPECIALS[2], SPECIALS[3]))
_ANY_ID = re.compile(r"(?P<split>train|val|test)_(?P<n>\d+)(?:\.png)?", re.IGNORECASE)

LAYOUT = """\
LevirCCcaptions.json                the authors' release: {"images": [{"filename", "split", "sentences": [{"raw"}]}]}
  or train.txt, val.txt, test.txt   one image file name a line, with tokens/<split>_<6 digits>.txt (5 token lists)
  or levir_cc_tokens.json           {"splits": {split: [file name]}, "tokens": {file name: [[token] x 5]}}
vocab.json                          optional: the authors' vocabulary (the rsicc protocol's indices); without it,
                                    built from all splits as the authors build it (words seen more than 5 times)
images/<split>/A/<split>_%06d.png   before (256x256); not needed for scoring
images/<split>/B/<split>_%06d.png   after"""


_SECTIONS = (Section("change", "change vs no change", (CHANGE, NO_CHANGE), all_metrics=True,
                     note="Change = pairs whose references describe a change; no change = pairs whose first reference "
                     "says that nothing changed (the authors' rule; on LEVIR-CC all five then say so)."),)
_INSTRUCTION = ("The first image is an aerial image of an area and the second image shows the same area some years "
                "later. In one short sentence, describe what changed (for example buildings or roads that were built "
                "or removed), or say that nothing has changed.")
STANDARD = Protocol(sections=_SECTIONS, subset_order=("total", CHANGE, NO_CHANGE), instruction=_INSTRUCTION)


@dataclass(frozen=True)
class Rsicc(Protocol):
    """The LEVIR-CC authors' ``get_eval_score``: pycocoevalcap's BLEU, METEOR, ROUGE-L and CIDEr-D scorers on the
    captions' vocabulary indices (`levir_cc_protocol.index_string`: no PTB tokenizer, ``<UNK>`` for words the
    vocabulary lacks), the change / no-change subsets, and S*m."""

    def tokenizer(self, dataset):
        vocab = dataset.vocabulary
        return lambda captions: [index_string(c, vocab) for c in captions]


RSICC = Rsicc(
    name="rsicc",
    description="the LEVIR-CC authors' get_eval_score: BLEU, METEOR, ROUGE-L and CIDEr-D on vocabulary indices "
    "(vocab.json; <UNK> for other words; no PTB tokenizer), change / no-change subsets, S*m",
    metrics=("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "S*m"),
    sections=_SECTIONS, subset_order=("total", CHANGE, NO_CHANGE), instruction=_INSTRUCTION,
)
assert tuple(RSICC.metrics[3:7]) == S_M_METRICS


class LevirCC(Loader):
    """LEVIR-CC: 10,077 pairs of bi-temporal remote-sensing images with 5 change captions each (IEEE TGRS 2022)."""

    info = DatasetInfo(
        name="levir-cc",
        title="LEVIR-CC",
        citation="Chenyang Liu, Rui Zhao, Hao Chen, Zhengxia Zou, Zhenwei Shi. Remote Sensing Image Change Captioning "
        "With Dual-Branch Transformers: A New Method and a Large Scale Dataset. IEEE TGRS 60, 2022.",
        source="https://github.com/Chen-Yang-Liu/LEVIR-CC-Dataset (Google Drive, Hugging Face lcybuaa/LEVIR-CC, Baidu "
        "Pan): put LevirCCcaptions.json and images/ under the data root; the tokens/ folder, the split lists and "
        "vocab.json of Chen-Yang-Liu/RSCaMa (data/LEVIR_CC/) or Change-Agent also work",
        layout=LAYOUT,
        protocol="One example per pair, id = image file name (test_000001.png); 5 references = the authors' tokens "
        "joined by spaces; subsets change / no-change by the first reference (the authors' rule; test 964 / 965). "
        "Two scorings that are NOT comparable with each other: standard (PTB tokenizer on the text) and rsicc "
        "(the authors' get_eval_score: BLEU, METEOR, ROUGE-L, CIDEr-D on vocabulary indices, <UNK> for words "
        "vocab.json lacks, no PTB tokenizer; plus S*m). rsicc numbers depend on vocab.json: use the one of the "
        "code you compare with (Change-Agent's: 468 entries; RSCaMa's: 501).",
    )
    protocols = (STANDARD, RSICC)
    expected = (f"{RELEASE}, or train.txt/val.txt/test.txt with {TOKENS}/, or {ASSEMBLED}; optional {VOCAB}; "
                "images/<split>/A|B/<name>")

    # ---------------------------------------------------------------------------------------------- which form
    @cached_property
    def form(self) -> str:
        """``release`` (LevirCCcaptions.json), ``repository`` (split lists + tokens/) or ``assembled``."""
        if (self.root / RELEASE).is_file():
            return "release"
        if (self.root / TOKENS).is_dir() and any((self.root / f"{s}.txt").is_file() for s in SPLITS):
            return "repository"
        if (self.root / ASSEMBLED).is_file():
            return "assembled"
        raise self.missing(self.root / RELEASE, "annotation file")

    def _check_root(self) -> None:
        self.form  # noqa: B018  (raises when no form of the annotations is there)

    # ------------------------------------------------------------------------------------- parsed annotations
    @cached_property
    def _release(self) -> dict[str, dict[str, list[list[str]]]]:
        path = self.root / RELEASE
        data = expect_dict(read_annotations(path, "LEVIR-CC captions file"), str(path), '{"images": [...]}')
        records = expect_list(data.get("images"), f"{path}: 'images'", "a list of image-pair records")
        pairs: dict[str, dict[str, list[list[str]]]] = {}
        for k, record in enumerate(records):
            where = f"{path}: images[{k}]"
            record = expect_dict(record, where, 'a record {"filename", "split", "sentences"}')
            name = record.get("filename")
            if not isinstance(name, str) or not name:
                raise UserError(f"{where}: needs a 'filename' (e.g. 'test_000001.png'), found {name!r}")
            split = record.get("split", name.split("_")[0])
            if split not in SPLITS:
                raise UserError(f"{where} ({name}): split {split!r} is not one of {', '.join(SPLITS)}")
            sentences = expect_list(record.get("sentences"), f"{where} ({name}): 'sentences'",
                                    'a list of {"raw": caption}')
            raws = [s.get("raw") if isinstance(s, dict) else None for s in sentences]
            raws = expect_strings(raws, f"{where} ({name}): sentences' 'raw'")
            captions = [tokenize(r, lowercase=False) for r in raws]
            self._add(pairs.setdefault(split, {}), name, captions, where)
        return pairs

    @cached_property
    def _assembled(self) -> dict[str, dict[str, list[list[str]]]]:
        path = self.root / ASSEMBLED
        data = expect_dict(read_annotations(path, "LEVIR-CC token file"), str(path), '{"splits", "tokens"}')
        splits = expect_dict(data.get("splits"), f"{path}: 'splits'", "{split: [file names]}")
        tokens = expect_dict(data.get("tokens"), f"{path}: 'tokens'", "{file name: [token lists]}")
        pairs: dict[str, dict[str, list[list[str]]]] = {}
        for split in SPLITS:
            if split not in splits:
                continue
            for name in expect_strings(splits[split], f"{path}: splits.{split}"):
                if name not in tokens:
                    raise UserError(f"{path}: no tokens for {name!r} of split {split!r}")
                self._add(pairs.setdefault(split, {}), name, self._token_lists(tokens[name], f"{path}: {name}"),
                          f"{path}: splits.{split}")
        return pairs

    def _repository_split(self, split: str) -> dict[str, list[list[str]]]:
        listing = self.root / f"{split}.txt"
        names = [line.strip() for line in decode_utf8(listing, listing.read_bytes()).split("\n") if line.strip()]
        pairs: dict[str, list[list[str]]] = {}
        for name in names:
            path = self.root / TOKENS / f"{name.split('.')[0]}.txt"
            if not path.is_file():
                raise self.missing(path, f"token file of {name} (listed in {listing.name})")
            self._add(pairs, name, self._token_lists(read_annotations(path, "LEVIR-CC token file"), str(path)),
                      str(listing))
        return pairs

    @staticmethod
    def _token_lists(value: object, where: str) -> list[list[str]]:
        captions = expect_list(value, where, "a list of token lists")
        return [[t for t in expect_strings(c, f"{where}: caption {k}") if t not in _DROPPED]
                for k, c in enumerate(captions)]

    @staticmethod
    def _add(pairs: dict[str, list[list[str]]], name: str, captions: list[list[str]], where: str) -> None:
        if name in pairs:
            raise UserError(f"{where}: {name!r} is listed twice; keep one entry per image pair")
        if not captions:
            raise UserError(f"{where}: {name!r} has no caption")
        pairs[name] = captions

    def _tokens(self, split: str) -> dict[str, list[list[str]]]:
        """File name -> the token lists of its references (without start / end tokens), in the file's order."""
        if self.form == "release":
            return self._release.get(split, {})
        if self.form == "assembled":
            return self._assembled.get(split, {})
        if split not in self._repository:
            self._repository[split] = self._repository_split(split)
        return self._repository[split]

    @cached_property
    def _repository(self) -> dict[str, dict[str, list[list[str]]]]:
        return {}

    # ------------------------------------------------------------------------------------------------ Dataset API
    def splits(self) -> list[str]:
        if self.form == "release":
            return [s for s in SPLITS if s in self._release]
        if self.form == "assembled":
            return [s for s in SPLITS if s in self._assembled]
        return [s for s in SPLITS if (self.root / f"{s}.txt").is_file()]

    def _build(self, split: str) -> list[Example]:
        images = self.root / "images" / split
        return [Example(name, images / "A" / name, images / "B" / name, tuple(" ".join(t) for t in captions),
                        {"kind": NO_CHANGE if is_no_change(captions[0]) else CHANGE})
                for name, captions in self._tokens(split).items()]

    def subsets(self, split: str) -> dict[str, list[str]]:
        """``total``, ``change`` and ``no-change`` (the authors' rule: the first reference), each its own corpus."""
        examples = self.examples(split)
        return {"total": [e.id for e in examples],
                CHANGE: [e.id for e in examples if e.tags["kind"] == CHANGE],
                NO_CHANGE: [e.id for e in examples if e.tags["kind"] == NO_CHANGE]}

    def id_key(self, example_id: str) -> str:
        """``test_000001.png``, ``test_000001``, ``TEST_1.png`` -> ``test_000001``. The split prefix is part of the
        key (file numbers repeat across splits); a bare number such as ``000001`` is left as it is and matches
        nothing.

        >>> [LevirCC.id_key(None, i) for i in ("test_000001.png", "val_12", "000001")]
        ['test_000001', 'val_000012', '000001']
        """
        m = _ANY_ID.fullmatch(example_id)
        return f"{m['split'].lower()}_{int(m['n']):06d}" if m else example_id

    def fingerprint(self) -> str:
        """The vocabulary's hash: the rsicc protocol's indices come from it (another ``vocab.json``: another run)."""
        return self.vocabulary.sha256

    # ----------------------------------------------------------------------------------------------- vocabulary
    @cached_property
    def vocabulary(self) -> Vocabulary:
        """``vocab.json`` under the data root, else the authors' `build_vocabulary` (threshold 5). It must hold the
        words of the no-change sentences: then the ``kind`` tags (decided on words) equal the authors' subsets
        (decided on the decoded indices)."""
        path = self.root / VOCAB
        vocab = Vocabulary.from_file(path) if path.is_file() else self.build_vocabulary()
        lacking = vocab.lacks()
        if lacking:
            where = path if path.is_file() else f"the vocabulary built from {self.root}"
            raise UserError(f"{where}: lacks {', '.join(lacking)}, words of the no-change sentences (the authors "
                            "decide the no-change subset on vocabulary indices); use the authors' vocab.json")
        return vocab

    def build_vocabulary(self, threshold: int = DEFAULT_THRESHOLD) -> Vocabulary:
        """The vocabulary the authors' ``build_vocab`` makes from these annotations: every split's references."""
        return Vocabulary.build((c for s in self.splits() for caps in self._tokens(s).values() for c in caps),
                                threshold)


DATASETS.add("levir-cc", LevirCC, description=LevirCC.__doc__.strip().split("\n")[0])
