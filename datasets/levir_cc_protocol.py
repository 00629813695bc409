"""The pure pieces of LEVIR-CC's `rsicc` scoring protocol: the authors' tokenization, vocabulary, index strings, S*m.

The authors of LEVIR-CC (Chen-Yang-Liu/Change-Agent @1b0b601: ``Multi_change/preprocess_data.py``, ``test.py``,
``utils_tool/utils.py``; the same code in Chen-Yang-Liu/RSCaMa @563e2c5) score captions as follows:

1. Text -> tokens (``tokenize`` in ``preprocess_data.py``): ``,`` and ``;`` become tokens of their own, ``.`` and
   ``?`` are deleted, the text is split at spaces; no lower-casing (the release's captions are lower case already).
2. Vocabulary (``build_vocab``): ``<NULL>`` 0, ``<UNK>`` 1, ``<START>`` 2, ``<END>`` 3, then every token seen MORE than
   ``word_count_threshold`` times (default 5) over the captions of ALL splits (train, val and test), in sorted order.
   The shipped ``vocab.json`` of Change-Agent (468 entries) is exactly that; RSCaMa's ``data/LEVIR_CC/vocab.json``
   (501 entries) is the same rule with a threshold of 4. The original RSICC code (Chen-Yang-Liu/RSICC @d1505e5,
   ``utils.py``) writes a ``WORDMAP`` with ``<pad>`` 0 and ``<unk>``, ``<start>``, ``<end>`` last, same threshold rule.
3. Each caption -> indices, words outside the vocabulary -> ``<UNK>``; ``<START>``, ``<END>`` and ``<NULL>`` are then
   removed wherever they are (``<UNK>`` stays), from the references and from the hypothesis.
4. ``get_eval_score`` joins each index list with spaces (``"4 60 23"``) and hands the strings straight to the
   pycocoevalcap scorers ``Bleu(4)``, ``Meteor()``, ``Rouge()``, ``Cider()``: no PTB tokenizer.
5. Subsets: a pair whose FIRST reference is one of five no-change sentences (`NO_CHANGE_PHRASES`) is ``no-change``,
   every other pair ``change``; each subset is scored as its own corpus, then the whole split.

Papers add S*m = (BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4 (`s_m`). Because the scorers see indices, the numbers
depend on the vocabulary file (which words are ``<UNK>``, and METEOR sees the digits): compare only numbers made with
the same ``vocab.json``.

idcbench's additions, for captions written by any model rather than index sequences from the authors' decoders:
`tokenize` lower-cases by default and splits at any whitespace (both change nothing on the release: its tokens are
lower case and contain no whitespace), and hypotheses are never cut (the authors' decoders stop after 41 tokens).

>>> vocab = Vocabulary.build([["a", "road", "is", "built"]] * 6 + [["a", "lake"]], threshold=5)
>>> vocab.encode(tokenize("A road is built, near a lake."))
[4, 7, 6, 5, 1, 1, 4, 1]
>>> index_strings({"p1": ["a road is built"]}, {"p1": "A new road is built."}, vocab)
({'p1': ['4 7 6 5']}, {'p1': ['4 1 7 6 5']})
>>> s_m({"BLEU-4": 0.5, "METEOR": 0.25, "ROUGE-L": 0.75, "CIDEr-D": 1.5})
0.75
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from idcbench.errors import UserError
from idcbench.files import read_json

CHANGE, NO_CHANGE = "change", "no-change"

# test.py's `nochange_list` (there with a trailing space: each word is followed by " " when decoded)
NO_CHANGE_PHRASES: tuple[str, ...] = (
    "the scene is the same as before",
    "there is no difference",
    "the two scenes seem identical",
    "no change has occurred",
    "almost nothing has changed",
)

DEFAULT_THRESHOLD = 5  # preprocess_data.py's --word_count_threshold: a word needs MORE than this many occurrences

# the two conventions of the authors' vocabulary files: (null / padding, unknown, start, end)
SPECIALS = ("<NULL>", "<UNK>", "<START>", "<END>")  # vocab.json of Change-Agent and RSCaMa
WORDMAP_SPECIALS = ("<pad>", "<unk>", "<start>", "<end>")  # WORDMAP_*.json of the original RSICC code

S_M_METRICS = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """The authors' text preprocessing: ``,`` / ``;`` split off as tokens, ``.`` / ``?`` deleted, split at whitespace.

    >>> tokenize("Two houses, a road; and trees. Changed?")
    ['two', 'houses', ',', 'a', 'road', ';', 'and', 'trees', 'changed']
    >>> tokenize("Two houses", lowercase=False)
    ['Two', 'houses']
    """
    for mark in (";", ","):
        text = text.replace(mark, " " + mark)
    for mark in ("?", "."):
        text = text.replace(mark, "")
    if lowercase:
        text = text.lower()
    return text.split()


def is_no_change(tokens: Sequence[str]) -> bool:
    """Whether a reference (its tokens, without ``<START>`` / ``<END>``) is one of the five no-change sentences: the
    authors' test for the first reference of a pair.

    >>> is_no_change(["there", "is", "no", "difference"]), is_no_change(["there", "is", "no", "road"])
    (True, False)
    """
    return " ".join(tokens) in NO_CHANGE_PHRASES


@dataclass(frozen=True)
class Vocabulary:
    """Word -> index, with the authors' unknown token and the tokens their scoring removes (start, end, padding).

    >>> v = Vocabulary.from_mapping({"<NULL>": 0, "<UNK>": 1, "<START>": 2, "<END>": 3, "road": 4})
    >>> v.encode(["<START>", "road", "lake", "<END>"]), sorted(v.dropped)
    ([2, 4, 1, 3], [0, 2, 3])
    """

    index: Mapping[str, int]
    unk: int
    dropped: frozenset[int]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int], where: str = "vocabulary") -> "Vocabulary":
        """A vocabulary from a ``{word: index}`` mapping in either convention of the authors (`SPECIALS` or
        `WORDMAP_SPECIALS`); anything else is a `UserError` naming `where`."""
        if not isinstance(mapping, Mapping) or not all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in mapping.items()):
            raise UserError(f"{where}: expected a JSON object {{word: integer index}}")
        for null, unk, start, end in (SPECIALS, WORDMAP_SPECIALS):
            if all(t in mapping for t in (null, unk, start, end)):
                break
        else:
            raise UserError(f"{where}: has neither {', '.join(SPECIALS)} (the authors' vocab.json) nor "
                            f"{', '.join(WORDMAP_SPECIALS)} (RSICC's WORDMAP); use the vocab.json of the code you "
                            "compare with")
        if len(set(mapping.values())) != len(mapping):
            raise UserError(f"{where}: two words share an index")
        return cls(dict(mapping), mapping[unk], frozenset((mapping[null], mapping[start], mapping[end])))

    @classmethod
    def from_file(cls, path: str | Path) -> "Vocabulary":
        """Read the authors' ``vocab.json`` (or RSICC's ``WORDMAP_*.json``)."""
        return cls.from_mapping(read_json(path, what="LEVIR-CC vocabulary"), str(path))

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], threshold: int = DEFAULT_THRESHOLD) -> "Vocabulary":
        """The vocabulary the authors' ``build_vocab`` makes from tokenized captions (pass those of every split, as
        they do): the four `SPECIALS`, then each word with more than `threshold` occurrences, in sorted order.

        >>> Vocabulary.build([["b", "a"]] * 2 + [["c"]], threshold=1).index
        {'<NULL>': 0, '<UNK>': 1, '<START>': 2, '<END>': 3, 'a': 4, 'b': 5}
        """
        counts = Counter(t for caption in captions for t in caption)
        index = {t: k for k, t in enumerate(SPECIALS)}
        for token, count in sorted(counts.items()):
            if count > threshold and token not in index:
                index[token] = len(index)
        return cls.from_mapping(index)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Indices of `tokens`, ``<UNK>`` for words the vocabulary lacks."""
        return [self.index.get(t, self.unk) for t in tokens]

    def lacks(self, phrases: Iterable[str] = NO_CHANGE_PHRASES) -> list[str]:
        """Words of `phrases` the vocabulary does not hold (none for every vocabulary the authors released): the
        authors decide no-change on the decoded indices, so a vocabulary without them changes the subsets.

        >>> Vocabulary.build([["there", "is", "no", "difference"]] * 6).lacks()[:3]
        ['the', 'scene', 'same']
        """
        return list(dict.fromkeys(w for p in phrases for w in p.split() if w not in self.index))

    @property
    def sha256(self) -> str:
        """A hash of the mapping (the same words at the same indices: the same hash, whatever the file's layout)."""
        text = json.dumps(sorted(self.index.items(), key=lambda kv: kv[1]), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode(text: str, vocab: Vocabulary) -> list[int]:
    """A caption as the authors' scorer sees it: `tokenize`, vocabulary lookup (``<UNK>`` for unknown words), then
    start, end and padding indices removed.

    >>> encode("The road is built.", Vocabulary.build([["road", "is", "built"]] * 6))
    [1, 6, 5, 4]
    """
    return [i for i in vocab.encode(tokenize(text)) if i not in vocab.dropped]


def index_string(text: str, vocab: Vocabulary) -> str:
    """`encode`'s indices joined by single spaces, as ``get_eval_score`` writes them."""
    return " ".join(str(i) for i in encode(text, vocab))


def index_strings(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                  vocab: Vocabulary) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """What ``get_eval_score`` hands to pycocoevalcap's scorers, as their ``(gts, res)`` dicts: per id of
    `references`, its references and its prediction as index strings. A reference id without a prediction is a
    `UserError`; predictions for other ids are ignored.
    """
    missing = [i for i in references if i not in predictions]
    if missing:
        raise UserError(f"no prediction for {len(missing)} of {len(references)} pairs (first: {missing[0]!r}); the "
                        "rsicc protocol scores every pair of the split")
    gts = {i: [index_string(r, vocab) for r in refs] for i, refs in references.items()}
    res = {i: [index_string(predictions[i], vocab)] for i in references}
    return gts, res


def s_m(scores: Mapping[str, float]) -> float:
    """S*m = (BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4, on whatever scale `scores` has (x100 in papers)."""
    return sum(scores[m] for m in S_M_METRICS) / len(S_M_METRICS)
