"""BLEU-1..4 exactly as pycocoevalcap 1.2 (`bleu_scorer.py`, option ``closest``), from per-image statistics.

Each image gives 10 integers: hypothesis length, closest reference length (ties to the shorter), the number of
hypothesis n-grams (guess, n = 1..4) and of clipped matches (correct, n = 1..4). The corpus score only sums them,
so any subset or resample is scored from the same rows.

>>> s = stats("the red cube moved", ["the red cube has moved", "a cube moved"])
>>> s
(4, 3, 4, 3, 2, 1, 4, 3, 1, 0)
>>> [round(b, 4) for b in corpus_bleu([s])]
[1.0, 1.0, 0.7937, 0.0001]
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from idcbench.metrics.base import Corpus, Metric, Scores, register, row_stats, row_tokens

N = 4
SMALL = 1e-9
TINY = 1e-15


def _counts(words: list[str]) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for k in range(1, N + 1):
        for i in range(len(words) - k + 1):
            g = tuple(words[i:i + k])
            counts[g] = counts.get(g, 0) + 1
    return counts


def stats(hyp: str, refs: Sequence[str]) -> tuple[int, ...]:
    """Statistics of one image (tokenized hypothesis and references)."""
    reflens = []
    maxcounts: dict[tuple[str, ...], int] = {}
    for ref in refs:
        words = ref.split()
        reflens.append(len(words))
        for g, c in _counts(words).items():
            if c > maxcounts.get(g, 0):
                maxcounts[g] = c
    words = hyp.split()
    testlen = len(words)
    reflen = min((abs(rl - testlen), rl) for rl in reflens)[1]
    guess = [max(0, testlen - k + 1) for k in range(1, N + 1)]
    correct = [0] * N
    for g, c in _counts(words).items():
        correct[len(g) - 1] += min(maxcounts.get(g, 0), c)
    return (testlen, reflen, *guess, *correct)


def _bleus(testlen: float, reflen: float, guess: Sequence[float], correct: Sequence[float]) -> list[float]:
    bleus = []
    bleu = 1.0
    for k in range(N):
        bleu *= float(correct[k] + TINY) / (guess[k] + SMALL)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (testlen + TINY) / (reflen + SMALL)
    if ratio < 1:
        for k in range(N):
            bleus[k] *= math.exp(1 - 1 / ratio)
    return bleus


def corpus_bleu(rows: Iterable[Sequence[int]]) -> list[float]:
    """BLEU-1..4 of a corpus from its image statistics (pycocoevalcap's corpus score)."""
    tot = [0] * (2 + 2 * N)
    for row in rows:
        for j in range(2 + 2 * N):
            tot[j] += row[j]
    return _bleus(tot[0], tot[1], tot[2:2 + N], tot[2 + N:])


def image_bleu(row: Sequence[int]) -> list[float]:
    """pycocoevalcap's per-image BLEU-1..4 (its `bleu_list`): the corpus formula on one image's statistics."""
    return _bleus(row[0], row[1], row[2:2 + N], row[2 + N:])


# ---------------------------------------------------------------------------------------------------- the metric
class Bleu(Metric):
    """BLEU-`n` (1..4), corpus level, from the shared per-image statistics (kept per sample as ``stats.bleu``)."""

    version = "pycocoevalcap 1.2"
    keeps = ("bleu",)

    def __init__(self, n: int):
        self.n = n
        self.name = f"BLEU-{n}"
        self.aliases = (f"Bleu_{n}", f"BLEU{n}", f"B{n}")
        self.description = f"BLEU-{n}, corpus level, closest reference length (pycocoevalcap 1.2, PTB tokens)"
        self.order = float(n)
        self.default = True
        self.column = n == 4

    def score(self, corpus: Corpus, done=None) -> Scores:
        rows = corpus.shared("bleu", lambda: [stats(h, r) for h, r in zip(*corpus.tokens)])
        per_image = [image_bleu(r)[self.n - 1] for r in rows]
        values = corpus.each_subset(lambda members: corpus_bleu(rows[j] for j in members)[self.n - 1])
        corpus.progress(self.name, 1, 1)
        return Scores(values, per_image, {"bleu": [list(r) for r in rows]},
                      {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 bleu_scorer)",
                       "option": "closest", "tokenizer": "PTB (stanford-corenlp-3.4.1)"})

    def statistic(self, rows):
        table = row_stats(rows, "bleu")
        if table is not None and all(isinstance(r, (list, tuple)) and len(r) == 10 for r in table):
            return BleuStatistic.from_counts(np.asarray(table), self.n)
        tokens = row_tokens(rows)
        return None if tokens is None else BleuStatistic(*tokens, self.n)


class BleuStatistic:
    """Corpus BLEU-`order` (1..4) of a batch of resamples, as pycocoevalcap computes it (``option='closest'``):
    the resample's summed per-image counts (integer sums: exact)."""

    def __init__(self, hyps: Sequence[str], refs: Sequence[Sequence[str]], order: int = 4):
        self._set([stats(hyp, list(rs)) for hyp, rs in zip(hyps, refs, strict=True)], order)

    @classmethod
    def from_counts(cls, table: np.ndarray, order: int = 4) -> "BleuStatistic":
        """From precomputed rows ``[testlen, reflen(closest), guess1..4, correct1..4]`` (`stats`)."""
        self = cls.__new__(cls)
        self._set(table, order)
        return self

    def _set(self, table, order: int) -> None:
        if not 1 <= order <= 4:
            raise ValueError(f"BLEU order must be 1..4, got {order}")
        self.order = order
        self.table = np.asarray(table, dtype=np.int64).reshape(-1, 10)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        from idcbench.bootstrap import counts

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


for _n in range(1, N + 1):
    register(Bleu(_n))
