"""The slow exact oracle for tests and benchmarks: corpus metrics of any multiset of ``per_sample.jsonl`` rows, each
computed the direct way (no vectorisation), without Java.

BLEU, ROUGE-L and CIDEr-D equal a scorer run on those rows to the last bit, METEOR is meteor-1.5's aggregate in Python
(equal up to the last bit of ``Math.pow``); metrics whose corpus value is a mean (SPICE, BERTScore) are means of the
per-sample values. The tables' intervals use each metric's vectorised `Metric.statistic`; tests check those against
this module.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from idcbench.errors import UserError
from idcbench.metrics import resolve_metrics

_BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")


class Rescorer:
    """Corpus metrics of resamples of a fixed list of sample rows (`load_samples` rows), without Java.

    Per-row data is prepared once per metric; `score(idx)` scores the corpus ``rows[idx]`` (a row drawn k times
    counts as k documents). BLEU, ROUGE-L and CIDEr-D equal a scorer run on those rows to the last bit, METEOR is
    meteor-1.5's aggregate in Python (equal up to the last bit of ``Math.pow``); SPICE and BERTScore are means of
    the per-sample values.

    >>> from idcbench.metrics import bleu
    >>> row = {"id": "1", "scores": {}, "stats": {"hyp": "a red cube", "refs": ["a red cube"],
    ...                                          "bleu": list(bleu.stats("a red cube", ["a red cube"]))}}
    >>> round(Rescorer([row]).score(np.array([0, 0]), ["BLEU-1"])["BLEU-1"], 6)
    1.0
    """

    def __init__(self, rows: Sequence[dict]):
        self.rows = list(rows)
        self._cache: dict[str, Any] = {}

    def _stats(self, key):
        return [r["stats"][key] for r in self.rows]

    def get(self, what: str):
        if what not in self._cache:
            self._cache[what] = self._build(what)
        return self._cache[what]

    def _build(self, what: str):
        from idcbench.metrics import cider, meteor, rouge

        if what == "bleu":
            return np.array(self._stats("bleu"), dtype=np.int64).reshape(len(self.rows), 10)
        if what == "meteor":
            lines = self._stats("meteor")
            if any(line is None for line in lines):
                raise UserError("rescoring METEOR needs the METEOR statistics of every sample")
            return meteor.summable_table(lines)
        if what == "rouge":
            return np.array([rouge.rouge_l(r["stats"]["hyp"], r["stats"]["refs"]) for r in self.rows])
        if what == "cider":
            return cider.CiderD(self._stats("hyp"), self._stats("refs"))
        # a metric whose corpus value is the mean of its per-sample values (SPICE, BERTScore)
        try:
            return np.array([float(r["scores"][what]) for r in self.rows])
        except KeyError:
            raise UserError(f"cannot rescore {what}: some samples have no per-sample {what} score") from None

    def score(self, idx: np.ndarray, names: Sequence[str]) -> dict[str, float]:
        """Scores (canonical metric `names`, see `resolve_metrics`) of the resample ``rows[idx]`` (order matters only
        for the means' last bits: ``np.mean`` in that order is what pycocoevalcap computes)."""
        from idcbench.metrics import bleu, meteor

        idx = np.asarray(idx, dtype=np.int64)
        if not len(idx):
            raise ValueError("rescore of an empty sample")
        counts = np.bincount(idx, minlength=len(self.rows))
        out: dict[str, float] = {}
        if any(m in _BLEU for m in names):
            tot = counts.astype(np.int64) @ self.get("bleu")
            values = bleu.corpus_bleu([tot.tolist()])  # one row: the summed statistics
            for q, m in enumerate(_BLEU):
                if m in names:
                    out[m] = values[q]
        for m in names:
            if m in _BLEU:
                continue
            if m == "METEOR":
                out[m] = meteor.aggregate(counts.astype(np.float64) @ self.get("meteor"))
            elif m == "ROUGE-L":
                out[m] = float(np.mean(self.get("rouge")[idx]))
            elif m == "CIDEr-D":
                out[m] = float(self.get("cider").score(idx.tolist())[0])
            else:
                out[m] = float(np.mean(self.get(m)[idx]))
        return out


def rescore(samples: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Corpus metrics (0-1 scale) of a multiset of sample rows (`load_samples` rows; a row present k times counts
    as k documents), without Java: `Rescorer` on these rows. To score many resamples of one list of rows, build
    one `Rescorer` and score index vectors (each row is prepared once); the leaderboard's intervals use the
    vectorised `Metric.statistic` of each metric instead."""
    return Rescorer(samples).score(np.arange(len(samples)), resolve_metrics(metrics))
