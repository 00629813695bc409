"""S*m, the summary score of remote-sensing change captioning papers: (BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4.

Computed from the four corpus values of the same subset (each on its own scale, x100 in tables, as the papers add
them), so it is never averaged over images; its bootstrap statistic is the mean of the four statistics on the same
resample.

>>> from idcbench.metrics.base import Scores
>>> done = {m: Scores({"total": v}) for m, v in zip(SMean.requires, (0.6, 0.4, 0.7, 1.3))}
>>> SMean().score(None, done).corpus
{'total': 0.75}
"""

from __future__ import annotations

from idcbench.metrics.base import Corpus, Metric, Scores, get, register


class SMean(Metric):
    """The mean of BLEU-4, METEOR, ROUGE-L and CIDEr-D (the ``S*m`` of RSICC papers)."""

    name, aliases, order = "S*m", ("Sm", "S_m", "S*_m"), 7.5
    description = "S*m = (BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4, remote-sensing change captioning's summary score"
    requires = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")
    tokens = False

    def score(self, corpus: Corpus | None, done=None) -> Scores:
        parts = [done[m].corpus for m in self.requires]
        subsets = [s for s in parts[0] if all(s in p for p in parts)]
        return Scores({s: sum(p[s] for p in parts) / len(parts) for s in subsets}, None, {},
                      {"formula": "(BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4 of the subset's corpus values"})

    def statistic(self, rows):
        from idcbench.bootstrap import MeanOf

        stats = [get(m).statistic(rows) for m in self.requires]
        return None if any(s is None for s in stats) else MeanOf(stats)


register(SMean())
