"""CIDEr-D exactly as pycocoevalcap 1.2 (`cider_scorer.py`), rewritten to be faster and give the same bits.

The original recomputes every sentence's tf-idf vector for every image. Here each distinct sentence is cooked once
per evaluation (its n-grams in the original's order) and its vector once per corpus, and the similarity of a
(hypothesis, reference) pair is computed once per corpus. The arithmetic is the original's, operation by operation:
``np.log`` for the idf, the dict iteration order for the sums, ``np.mean`` over the four n-gram orders and over
images. Document frequencies come from the references of the images being scored: a subset is its own corpus.

A corpus may repeat an image (each occurrence is its own document, as in a bootstrap resample): `score([0, 0, 1])`
is pycocoevalcap on three images. Batches of resamples are vectorised in `idcbench.bootstrap_metrics`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

N = 4
SIGMA = 6.0


def cook(sentence: str) -> tuple[list[tuple[tuple[str, ...], int, int]], int]:
    """n-grams of a tokenized sentence as (ngram, count, n-1) in pycocoevalcap's order, and its bigram count."""
    words = sentence.split()
    counts: dict[tuple[str, ...], int] = {}
    for k in range(1, N + 1):
        for i in range(len(words) - k + 1):
            g = tuple(words[i:i + k])
            counts[g] = counts.get(g, 0) + 1
    items = [(g, c, len(g) - 1) for g, c in counts.items()]
    return items, sum(c for g, c, n in items if n == 1)


class CiderD:
    """CIDEr-D of any subset of a fixed set of images.

    >>> c = CiderD(["a red cube", "a blue ball"], [["a red cube", "the red cube"], ["a blue sphere"]])
    >>> corpus, per_image = c.score([0, 1])
    >>> float(corpus) == float(per_image.mean())
    True
    """

    def __init__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]):
        if len(hyps) != len(refs):
            raise ValueError("one hypothesis per image")
        sid: dict[str, int] = {}
        sentences: list[str] = []

        def intern(s: str) -> int:
            i = sid.get(s)
            if i is None:
                i = sid[s] = len(sentences)
                sentences.append(s)
            return i

        self.hyp = [intern(h) for h in hyps]
        self.refs = [tuple(intern(r) for r in rs) for rs in refs]
        self.sentences = sentences
        gid: dict[tuple[str, ...], int] = {}
        # Per sentence: its n-grams as (n-gram id, float count, n - 1) in the original's order, and its length
        # (number of bigrams, the original's `length`).
        self.items: list[list[tuple[int, float, int]]] = []
        self.length: list[int] = []
        for s in sentences:
            items, length = cook(s)
            self.items.append([(gid.setdefault(g, len(gid)), float(c), n) for g, c, n in items])
            self.length.append(length)
        self.doc_ngrams = [tuple({g for r in rs for g, _, _ in self.items[r]}) for rs in self.refs]
        self._common: dict[tuple[int, int], tuple[list[tuple[int, int]], ...]] = {}

    def _pair(self, h: int, r: int):
        """The n-grams a hypothesis shares with a reference: per n, (hyp index, ref index) in hyp order."""
        pos = {g: j for j, (g, _, _) in enumerate(self.items[r])}
        common: tuple[list[tuple[int, int]], ...] = ([], [], [], [])
        for i, (g, _, n) in enumerate(self.items[h]):
            j = pos.get(g)
            if j is not None:
                common[n].append((i, j))
        self._common[(h, r)] = common
        return common

    def score(self, idx: Sequence[int]) -> tuple[np.float64, np.ndarray]:
        """(corpus CIDEr-D, per-image CIDEr-D) of the images `idx`, scored as one corpus in that order."""
        idx = list(idx)
        if not idx:
            raise ValueError("CIDEr-D of an empty corpus")
        df: dict[int, int] = {}
        for i in idx:
            for g in self.doc_ngrams[i]:
                df[g] = df.get(g, 0) + 1
        assert len(idx) >= max(df.values(), default=0)
        ref_len = float(np.log(float(len(idx))))
        # idf term per document-frequency value: np.log exactly as the original (not math.log).
        logs = {c: float(np.log(max(1.0, float(c)))) for c in set(df.values()) | {0}}
        idf = {g: ref_len - logs[c] for g, c in df.items()}
        no_idf = ref_len - logs[0]
        vectors: dict[int, tuple[list[float], list[float], int]] = {}

        def vector(s: int):
            vals = []
            norm = [0.0, 0.0, 0.0, 0.0]
            for g, tf, n in self.items[s]:
                x = tf * idf.get(g, no_idf)
                vals.append(x)
                norm[n] += x ** 2  # == the original's pow(np.float64, 2), not x * x
            v = vectors[s] = (vals, [math.sqrt(x) for x in norm], self.length[s])
            return v

        pen_cache: dict[int, float] = {}
        sims: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        commons = self._common

        def sim(h: int, r: int):
            vh, nh, lh = vectors.get(h) or vector(h)
            vr, nr, lr = vectors.get(r) or vector(r)
            d = lh - lr
            pen = pen_cache.get(d)
            if pen is None:
                delta = float(d)
                pen = pen_cache[d] = np.e ** (-(delta**2) / (2 * SIGMA**2))
            common = commons.get((h, r)) or self._pair(h, r)
            vals = []
            for n in range(N):
                val = 0.0
                for i, j in common[n]:  # an n-gram missing from the reference adds min(x, 0.0) * 0.0 == 0.0
                    x, y = vh[i], vr[j]
                    val += (x if x <= y else y) * y
                if nh[n] != 0 and nr[n] != 0:
                    val /= nh[n] * nr[n]
                vals.append(val * pen)
            out = sims[(h, r)] = tuple(vals)
            return out

        totals = np.empty((len(idx), N))
        nrefs = np.empty(len(idx))
        for row, i in enumerate(idx):
            h = self.hyp[i]
            s0 = s1 = s2 = s3 = 0.0
            for r in self.refs[i]:
                a, b, c, d = sims.get((h, r)) or sim(h, r)
                s0 += a
                s1 += b
                s2 += c
                s3 += d
            totals[row] = (s0, s1, s2, s3)
            nrefs[row] = len(self.refs[i])
        per_image = np.mean(totals, axis=1) / nrefs * 10.0
        return np.mean(per_image), per_image
