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
