"""Text helpers of the baselines: caption normalisation, word tokenization, a word vocabulary and CIDEr-D.

`cider_d` follows pycocoevalcap's CiderScorer (CIDEr-D: n = 1..4, tf-idf vectors with clipped numerator, Gaussian length
penalty sigma 6 on the bigram count, x10, mean over n, averaged over references), vectorised with numpy so that the
nearest-neighbour consensus (all candidates against all others) is cheap. Document frequencies are passed in, so the
consensus can use the training corpus; `corpus_cider_d` computes them from the references of the scored set exactly
like pycocoevalcap (on already tokenized text; the official scores use PTB tokenization, see `idcbench.metrics`).

>>> tokenize("The red cube, it moved.")
['the', 'red', 'cube', ',', 'it', 'moved']
>>> round(corpus_cider_d({"a": ["a red cube moved"]}, {"a": "a red cube moved"})[0], 6)
0.0
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

_PUNCT_SPLIT = re.compile(r"([;,])")
_PUNCT_DROP = re.compile(r"[.?!\"]")


def normalize_caption(caption: str) -> str:
    """Lower-case, whitespace collapsed, trailing full stops dropped: the form under which captions are counted."""
    return " ".join(caption.lower().split()).rstrip(" .").strip()


def tokenize(caption: str) -> list[str]:
    """Word tokens as in DUDA's preprocessing: lower-case, ``;`` and ``,`` kept as tokens, ``. ? ! "`` dropped."""
    text = _PUNCT_DROP.sub(" ", _PUNCT_SPLIT.sub(r" \1 ", caption.lower()))
    return text.split()


class Vocabulary:
    """Word <-> id. Ids 0..3 are ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``; words sorted by (-count, word)."""

    PAD, UNK, BOS, EOS = 0, 1, 2, 3
    SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")

    def __init__(self, words: Sequence[str]):
        self.itos = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "Vocabulary":
        counts = Counter(t for c in captions for t in tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, caption: str, max_len: int) -> list[int]:
        """``<bos> w1 .. wn <eos>`` with at most `max_len` words."""
        ids = [self.stoi.get(t, self.UNK) for t in tokenize(caption)][:max_len]
        return [self.BOS, *ids, self.EOS]

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.EOS:
                break
            if i in (self.PAD, self.BOS):
                continue
            words.append(self.itos[i] if i < len(self.itos) else "<unk>")
        return " ".join(words)


def ngram_counts(tokens: Sequence[str], n_max: int = 4) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for n in range(1, n_max + 1) for i in range(len(tokens) - n + 1))


def document_frequency(reference_sets: Iterable[Sequence[Sequence[str]]]) -> tuple[dict[tuple, float], float]:
    """pycocoevalcap's df (in how many reference sets an n-gram occurs) and ``log(number of sets)``."""
    df: dict[tuple, float] = defaultdict(float)
    n_docs = 0
    for refs in reference_sets:
        n_docs += 1
        for ngram in set(g for r in refs for g in ngram_counts(r)):
            df[ngram] += 1
    return dict(df), float(np.log(float(n_docs))) if n_docs else 0.0


def _vectors(token_lists: Sequence[Sequence[str]], df: Mapping[tuple, float], ref_len: float):
    """Per n: a dense matrix of tf-idf weights over the n-grams of these sentences; norms; bigram-count lengths."""
    counts = [ngram_counts(t) for t in token_lists]
    mats, norms = [], []
    for n in range(1, 5):
        grams = sorted({g for c in counts for g in c if len(g) == n})
        col = {g: j for j, g in enumerate(grams)}
        m = np.zeros((len(token_lists), max(len(grams), 1)))
        for i, c in enumerate(counts):
            for g, tf in c.items():
                if len(g) == n:
                    m[i, col[g]] = float(tf) * (ref_len - np.log(max(1.0, df.get(g, 0.0))))
        mats.append(m)
        norms.append(np.sqrt((m * m).sum(1)))
    lengths = np.array([sum(v for g, v in c.items() if len(g) == 2) for c in counts], dtype=float)
    return mats, norms, lengths


def cider_d_matrix(token_lists: Sequence[Sequence[str]], df: Mapping[tuple, float], ref_len: float,
                   sigma: float = 6.0) -> np.ndarray:
    """M[i, j] = CIDEr-D of sentence i as hypothesis against sentence j as its only reference (x10, as reported by
    pycocoevalcap before x100). A multi-reference score is the mean of a row over the references."""
    mats, norms, lengths = _vectors(token_lists, df, ref_len)
    score = np.zeros((len(token_lists), len(token_lists)))
    for m, norm in zip(mats, norms):
        # CIDEr-D clips the hypothesis weight: sum_g min(h_g, r_g) * r_g; weights are >= 0 (df <= number of
        # documents), so n-grams absent from the hypothesis add min(0, r) * r = 0 as in pycocoevalcap.
        num = (np.minimum(m[:, None, :], m[None, :, :]) * m[None, :, :]).sum(-1)
        den = norm[:, None] * norm[None, :]
        score += np.where(den > 0, num / np.where(den > 0, den, 1.0), num)
    delta = lengths[:, None] - lengths[None, :]
    return score / 4.0 * np.exp(-(delta ** 2) / (2 * sigma ** 2)) * 10.0


def corpus_cider_d(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> tuple[float, dict[str, float]]:
    """CIDEr-D of `predictions` (id -> caption) against `references` (id -> captions), df from these references,
    on `tokenize`d text: (corpus score, per-id scores) on pycocoevalcap's scale (x10 inside, not x100). Uses
    idcbench's exact pycocoevalcap rewrite (`idcbench.metrics.cider`).
    (Model selection only: reported scores use PTB tokenization through `idcbench.scoring`.)"""
    ids = list(predictions)
    if not ids:
        return 0.0, {}
    from idcbench.metrics.cider import CiderD

    scorer = CiderD([" ".join(tokenize(predictions[i])) for i in ids],
                    [[" ".join(tokenize(r)) for r in references[i]] for i in ids])
    corpus, per = scorer.score(range(len(ids)))
    return float(corpus), {i: float(v) for i, v in zip(ids, per)}


def consensus_choice(candidates: Sequence[str], df: Mapping[tuple, float], ref_len: float) -> int:
    """Index of the candidate with the highest mean CIDEr-D against the other candidates (Devlin et al. 2015).
    Ties go to the earliest candidate (callers order candidates by neighbour rank)."""
    if len(candidates) < 2:
        return 0
    m = cider_d_matrix([tokenize(c) for c in candidates], df, ref_len)
    np.fill_diagonal(m, 0.0)
    mean = m.sum(1) / (len(candidates) - 1)
    best = mean.max()
    # exact float ties are common with templated captions: the first one wins, independent of numpy's argmax details
    return int(np.flatnonzero(mean >= best - 1e-12 * max(1.0, abs(best)))[0])
