"""CIDEr-D exactly as pycocoevalcap 1.2 (`cider_scorer.py`), rewritten to be faster and give the same bits.

The original recomputes every sentence's tf-idf vector for every image. Here each distinct sentence is cooked once
per evaluation (its n-grams in the original's order) and its vector once per corpus, and the similarity of a
(hypothesis, reference) pair is computed once per corpus. The arithmetic is the original's, operation by operation:
``np.log`` for the idf, the dict iteration order for the sums, ``np.mean`` over the four n-gram orders and over
images. Document frequencies come from the references of the images being scored: a subset is its own corpus.

A corpus may repeat an image (each occurrence is its own document, as in a bootstrap resample): `score([0, 0, 1])`
is pycocoevalcap on three images. `CiderDStatistic` scores whole batches of resamples with array operations
(document frequencies recomputed for every resample: all terms of the score are linear in idf**2, so one sparse
product per term evaluates a batch).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from idcbench.bootstrap import counts
from idcbench.metrics.base import Corpus, Metric, Scores, register, row_tokens

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


class CiderDMetric(Metric):
    """CIDEr-D (pycocoevalcap's ``Cider``): document frequencies from the references of the scored subset."""

    name, aliases, order, default, column = "CIDEr-D", ("CIDEr", "CIDER"), 7.0, True, True
    description = "CIDEr-D (pycocoevalcap's CIDEr), document frequencies from the scored corpus"
    min_examples = 2
    why_min_examples = ("its n-gram weights are idf = log(N / df) over the N examples scored together, so with "
                        "N = 1 every n-gram has df = N, every weight is 0 and any caption scores 0")

    def score(self, corpus: Corpus, done=None) -> Scores:
        scorer = CiderD(*corpus.tokens)
        results = {}
        for q, (s, members) in enumerate(corpus.subsets.items()):
            if members:
                results[s] = scorer.score(members)
            corpus.progress(self.name, q + 1, len(corpus.subsets))
        total = corpus.subsets.get("total")
        per_sample = None
        if total is not None and "total" in results:  # per-image values within the total corpus, in sample order
            per_sample = [0.0] * len(corpus)
            for k, j in enumerate(total):
                per_sample[j] = float(results["total"][1][k])
        return Scores({s: float(v[0]) for s, v in results.items()}, per_sample, {},
                      {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 cider_scorer)", "n": N,
                       "sigma": SIGMA, "df": "references of the scored subset", "tokenizer": "PTB (stanford-corenlp-3.4.1)"})

    def statistic(self, rows):
        tokens = row_tokens(rows)
        return None if tokens is None else CiderDStatistic(*tokens)


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


register(CiderDMetric())
