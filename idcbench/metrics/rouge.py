"""ROUGE-L exactly as pycocoevalcap 1.2 (`rouge.py`): LCS on ``split(" ")``, precision and recall maximised
separately over the references, F with beta = 1.2; the corpus value is ``np.mean`` over images.

The LCS length is computed bit-parallel (Hyyrö 2004), which gives the same integer as the original dynamic program.

>>> rouge_l("a red cube moved", ["the red cube moved", "a sphere"])
0.75
>>> rouge_l("", [""])
1.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from idcbench.metrics.base import Corpus, Metric, Scores, register

BETA = 1.2


def lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    m = len(a)
    if m == 0 or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << m) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return m - bin(v).count("1")


def rouge_l(hyp: str, refs: Sequence[str]) -> float:
    """ROUGE-L of one image (tokenized hypothesis and references)."""
    token_c = hyp.split(" ")
    prec = []
    rec = []
    for ref in refs:
        token_r = ref.split(" ")
        n = lcs(token_r, token_c)
        prec.append(n / float(len(token_c)))
        rec.append(n / float(len(token_r)))
    prec_max = max(prec)
    rec_max = max(rec)
    if prec_max != 0 and rec_max != 0:
        return ((1 + BETA**2) * prec_max * rec_max) / float(rec_max + BETA**2 * prec_max)
    return 0.0


class RougeL(Metric):
    """ROUGE-L: the mean of the per-image values over the subset (so its bootstrap is a mean too)."""

    name, aliases, order, default, column = "ROUGE-L", ("ROUGE_L", "ROUGE", "RougeL"), 6.0, True, True
    description = "ROUGE-L, beta 1.2, mean over images (pycocoevalcap 1.2)"
    mean_of_samples = True

    def score(self, corpus: Corpus, done=None) -> Scores:
        values = np.array([rouge_l(h, r) for h, r in zip(*corpus.tokens)])
        corpus.progress(self.name, 1, 1)
        return Scores(corpus.each_subset(lambda members: np.mean(values[members])), values.tolist(), {},
                      {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 rouge.py)", "beta": BETA,
                       "tokenizer": "PTB (stanford-corenlp-3.4.1)"})


register(RougeL())
