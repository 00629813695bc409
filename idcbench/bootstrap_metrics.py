"""Vectorised corpus statistics of the COCO caption metrics, for the bootstrap (`idcbench.bootstrap`).

Each class takes per-example data once and then evaluates the *corpus* metric on a whole batch of resamples
(``(B, n)`` index matrices) with array operations: a resample may repeat an example and every occurrence is its
own document, exactly as if the resampled list were scored from scratch by pycocoevalcap.

- `BleuStatistic`: BLEU-1..4 from the per-example counts of `idcbench.metrics.bleu.stats` (pycocoevalcap's
  ``closest`` reference length), summed with the resample's counts.
- `CiderDStatistic`: CIDEr-D with document frequencies recomputed for every resample (df = number of drawn
  documents whose references contain the n-gram; N = n). All terms of the score are linear in idf**2, so one
  sparse product per term evaluates a whole batch.
- `MeteorStatistic`: METEOR 1.5's aggregate (`idcbench.metrics.meteor.aggregate`) of summed sufficient statistics
  (the 23-number lines of the jar's ``SCORE`` command), as its ``EVAL`` does.

Inputs are PTB-tokenised strings (what pycocoevalcap scores after its tokenizer). Values are on the 0-1 scale
(CIDEr-D on its own 0-10 scale).

>>> s = CiderDStatistic(["a red cube", "a blue ball"], [["a red cube"], ["the blue ball", "a blue ball"]])
>>> import numpy as np
>>> float(s(np.array([[0, 1]]))[0]) > 0
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from idcbench.bootstrap import counts
from idcbench.metrics import bleu, meteor
from idcbench.metrics.bleu import SMALL, TINY


class BleuStatistic:
    """Corpus BLEU-`order` (1..4) as pycocoevalcap computes it (``option='closest'``)."""

    def __init__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]], order: int = 4):
        self._set([bleu.stats(hyp, list(rs)) for hyp, rs in zip(hyps, refs, strict=True)], order)

    @classmethod
    def from_counts(cls, table: np.ndarray, order: int = 4) -> "BleuStatistic":
        """From precomputed rows ``[testlen, reflen(closest), guess1..4, correct1..4]`` (`idcbench.metrics.bleu.stats`)."""
        self = cls.__new__(cls)
        self._set(table, order)
        return self

    def _set(self, table, order: int) -> None:
        if not 1 <= order <= 4:
            raise ValueError(f"BLEU order must be 1..4, got {order}")
        self.order = order
        self.table = np.asarray(table, dtype=np.int64).reshape(-1, 10)  # integer sums: exact

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        tot = (counts(idx, len(self.table)) @ self.table).astype(np.float64)  # (B, 10)
        testlen, reflen, guess, correct = tot[:, 0], tot[:, 1], tot[:, 2:6], tot[:, 6:10]
        bleu = np.ones(len(tot))
        for k in range(self.order):  # same order of float operations as pycocoevalcap
            bleu = bleu * ((correct[:, k] + TINY) / (guess[:, k] + SMALL))
        score = bleu ** (1.0 / self.order)
        ratio = (testlen + TINY) / (reflen + SMALL)
        short = ratio < 1
        score[short] *= np.exp(1 - 1 / ratio[short])
        return score


class CiderDStatistic:
    """Corpus CIDEr-D (pycocoevalcap's ``Cider``: n = 4, sigma = 6) with per-resample document frequencies."""

    def __init__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0,
                 chunk: int = 25):
        import scipy.sparse as sp

        if len(hyps) != len(refs):
            raise ValueError("one hypothesis per example")
        self.n_examples = ne = len(hyps)
        self.n, self.chunk = n, chunk
        m = np.array([len(rs) for rs in refs], dtype=np.float64)
        if ne and m.min() == 0:
            raise ValueError(f"example {int(np.argmin(m))} has no references")
        # Sentences: the n hypotheses first, then every reference; owner = example index.
        sents = list(hyps) + [r for rs in refs for r in rs]
        owner = np.concatenate([np.arange(ne), np.repeat(np.arange(ne), m.astype(np.int64))]).astype(np.int64)
        sent, gid, tf, order, n_grams = _ngram_counts(sents, n)
        n_words = np.array([len(x.split()) for x in sents], dtype=np.int64)
        length = np.maximum(n_words - 1, 0).astype(np.float64)  # CIDEr's "length": the number of bigrams

        hyp = sent < ne
        # H: row example*n + order, hypothesis tf**2.
        self.H = sp.csr_matrix((tf[hyp] ** 2, (sent[hyp] * n + order[hyp], gid[hyp])), shape=(ne * n, n_grams))
        # Reference entries and the hypothesis tf of the same n-gram of the same example (0 when absent).
        r_sent, r_gid, r_tf, r_ord = sent[~hyp], gid[~hyp], tf[~hyp], order[~hyp]
        r_owner = owner[r_sent]
        h_key = sent[hyp] * n_grams + gid[hyp]  # sorted: entries come sorted by (sentence, n-gram)
        r_key = r_owner * n_grams + r_gid
        pos = np.minimum(np.searchsorted(h_key, r_key), max(len(h_key) - 1, 0))
        match = (h_key[pos] == r_key) if len(h_key) else np.zeros(len(r_key), dtype=bool)
        tf_h = np.where(match, tf[hyp][pos] if len(h_key) else 0.0, 0.0)
        # Only (reference, order) rows sharing an n-gram with the hypothesis can score above 0: keep those.
        row = (r_sent - ne) * n + r_ord
        keep_rows = _unique(row[match])
        keep = np.isin(row, keep_rows)
        compact = np.searchsorted(keep_rows, row[keep])
        rows = len(keep_rows)
        self.R = sp.csr_matrix((r_tf[keep] ** 2, (compact, r_gid[keep])), shape=(rows, n_grams))
        a_val = np.minimum(tf_h, r_tf) * r_tf
        sel = keep & match
        self.A = sp.csr_matrix((a_val[sel], (np.searchsorted(keep_rows, row[sel]), r_gid[sel])),
                               shape=(rows, n_grams))
        ref_of_row = keep_rows // n + ne  # sentence index of each kept row's reference
        self.owner = owner[ref_of_row] * n + keep_rows % n
        delta = length[owner[ref_of_row]] - length[ref_of_row]
        self.penalty = np.e ** (-(delta ** 2) / (2 * sigma ** 2))
        # D^T: n-gram g occurs in some reference of example i (a document = an example's references).
        d_key = _unique(r_owner * n_grams + r_gid)
        self.D_T = sp.csr_matrix((np.ones(len(d_key)), (d_key % n_grams, d_key // n_grams)), shape=(n_grams, ne))
        # Per example: 10 * mean over orders / number of references, as one sparse sum over its kept rows.
        self.scale = 10.0 / n / m
        ex = self.owner // n
        self.O = sp.csr_matrix((self.scale[ex], (ex, np.arange(rows))), shape=(ne, rows))
        self.log_n = np.log(float(ne)) if ne else 0.0

    def per_example(self, weights: np.ndarray) -> np.ndarray:
        """Per-example CIDEr-D under document frequencies of the weighted corpus: ``(B, n)`` -> ``(B, n)``."""
        df = (self.D_T @ weights.T)  # (V, B)
        idf2 = (self.log_n - np.log(np.maximum(1.0, df))) ** 2
        norm_h = np.sqrt(self.H @ idf2)[self.owner]           # (rows, B)
        norm_r = np.sqrt(self.R @ idf2)
        val = self.A @ idf2
        den = norm_h * norm_r
        val = np.divide(val, den, out=val, where=den != 0) * self.penalty[:, None]
        return (self.O @ val).T  # sum over references and orders, times 10 / n / m

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, idx.shape[0], self.chunk):
            w = counts(idx[start:start + self.chunk], self.n_examples).astype(np.float64)
            out.append((w * self.per_example(w)).sum(axis=1) / self.n_examples)
        return np.concatenate(out)


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: faster here than numpy's hash-based unique)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x


def _ngram_counts(sents: Sequence[str], n: int) -> tuple[np.ndarray, ...]:
    """n-gram counts of whitespace-tokenised sentences, as arrays sorted by (sentence, n-gram id).

    Returns (sentence, n-gram id, count, order - 1, number of distinct n-grams). N-grams are identified exactly:
    each order's id extends the id of the (k-1)-gram prefix by the next word, re-indexed with np.unique.
    """
    words: dict[str, int] = {}
    toks = [[words.setdefault(w, len(words)) for w in s.split()] for s in sents]
    lens = np.array([len(t) for t in toks], dtype=np.int64)
    flat = np.fromiter((w for t in toks for w in t), dtype=np.int64, count=int(lens.sum()))
    sent_of = np.repeat(np.arange(len(sents), dtype=np.int64), lens)
    pos = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    left = lens[sent_of] - pos  # tokens from here to the end of the sentence
    base = len(words) + 1
    ids = flat.copy()  # id of the k-gram starting at each token (valid where left >= k)
    out_s, out_g, out_o = [], [], []
    offset = 0
    for k in range(1, n + 1):
        if k > 1:
            nxt = np.zeros_like(flat)
            nxt[:-k + 1] = flat[k - 1:]
            ids = ids * base + nxt
        ok = left >= k
        uniq, inv = np.unique(ids[ok], return_inverse=True)
        ids_k = np.zeros_like(ids)
        ids_k[ok] = inv
        ids = ids_k  # small ids for the next order (no overflow)
        out_s.append(sent_of[ok])
        out_g.append(inv + offset)
        out_o.append(np.full(int(ok.sum()), k - 1, dtype=np.int64))
        offset += len(uniq)
    s = np.concatenate(out_s) if out_s else np.zeros(0, dtype=np.int64)
    g = np.concatenate(out_g) if out_g else np.zeros(0, dtype=np.int64)
    o = np.concatenate(out_o) if out_o else np.zeros(0, dtype=np.int64)
    key, counts = np.unique(s * max(offset, 1) + g, return_counts=True)
    sent, gid = key // max(offset, 1), key % max(offset, 1)
    order = np.zeros(offset, dtype=np.int64)
    order[g] = o
    return sent, gid, counts.astype(np.float64), order[gid], offset


class MeteorStatistic:
    """METEOR 1.5's corpus score from per-example sufficient statistics (what the jar's ``EVAL`` prints last):
    `idcbench.metrics.meteor.aggregate` of the resample's summed `summable` rows."""

    def __init__(self, stats: Sequence[str | Sequence[float]]):
        self.table = meteor.summable_table(stats).astype(np.int64)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        totals = (counts(idx, len(self.table)) @ self.table).astype(np.float64)  # (B, 23), exact integer sums
        return meteor.aggregate(totals)
