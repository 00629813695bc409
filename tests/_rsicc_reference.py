"""The oracle of LEVIR-CC's `rsicc` protocol: what the authors' evaluation prints, from pycocoevalcap's own scorers.

The authors' ``test.py`` (Chen-Yang-Liu/Change-Agent @1b0b601, ``Multi_change/test.py``; RSCaMa @563e2c5 the same)
collects, per pair, the 5 reference index lists and the hypothesis index list (``<START>``, ``<END>``, ``<NULL>``
removed), puts a pair in no-change when its first reference, decoded word by word (each word followed by a space), is
in their ``nochange_list``, and calls ``get_eval_score`` on the no-change pairs, the change pairs and all pairs:
``Bleu(4)``, ``Meteor()``, ``Rouge()``, ``Cider()`` on the space-joined indices, no tokenizer. Their scorers are
copies of pycocoevalcap's (identical but for list instead of dict inputs, and CIDEr-D's document-frequency log on a
one-pair corpus); this oracle runs pycocoevalcap 1.2's classes, one scorer run per group.

Written out step by step on purpose, sharing nothing with `idcbench.datasets.levir_cc_protocol` but the vocabulary
file the dataset reads: the fast implementation is tested against it. Slow (a JVM for METEOR).
"""

from __future__ import annotations

from typing import Mapping, Sequence

SUBSETS = ("total", "change", "no-change")
NOCHANGE_LIST = ["the scene is the same as before ", "there is no difference ", "the two scenes seem identical ",
                 "no change has occurred ", "almost nothing has changed "]


def words(text: str) -> list[str]:
    """The authors' preprocessing (``,`` / ``;`` split off, ``.`` / ``?`` deleted, split at spaces), lower-cased."""
    for mark in (";", ","):
        text = text.replace(mark, " " + mark)
    for mark in ("?", "."):
        text = text.replace(mark, "")
    return text.lower().split()


def indices(text: str, vocab: Mapping[str, int]) -> list[int]:
    """Look every word up (``<UNK>`` when absent), then drop the start, end and padding indices."""
    unk = vocab["<UNK>"] if "<UNK>" in vocab else vocab["<unk>"]
    drop = {vocab[t] for t in ("<START>", "<END>", "<NULL>", "<start>", "<end>", "<pad>") if t in vocab}
    return [i for i in (vocab.get(w, unk) for w in words(text)) if i not in drop]


def is_no_change(first_reference: Sequence[int], vocab: Mapping[str, int]) -> bool:
    """The authors' test: the first reference's words, each followed by a space, is one of `NOCHANGE_LIST`."""
    word_of = {i: w for w, i in vocab.items()}
    return "".join(word_of[i] + " " for i in first_reference) in NOCHANGE_LIST


def get_eval_score(references: list[list[list[int]]], hypotheses: list[list[int]], meteor) -> dict[str, float]:
    """The authors' ``get_eval_score`` on pycocoevalcap's scorers (positions as ids), under idcbench's names, plus
    S*m = (BLEU-4 + METEOR + ROUGE-L + CIDEr-D) / 4."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    res = {k: [" ".join(str(x) for x in hyp)] for k, hyp in enumerate(hypotheses)}
    gts = {k: [" ".join(str(x) for x in ref) for ref in refs] for k, refs in enumerate(references)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor_score, _ = meteor.compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    scores = {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3], "METEOR": meteor_score,
              "ROUGE-L": float(rouge), "CIDEr-D": float(cider)}
    scores["S*m"] = (scores["BLEU-4"] + scores["METEOR"] + scores["ROUGE-L"] + scores["CIDEr-D"]) / 4
    return scores


def rsicc_scores(dataset, split: str, predictions: Mapping[str, str], meteor=None) -> dict[str, dict[str, float]]:
    """subset (``total``, ``change``, ``no-change``) -> metric -> value (0-1 scale, CIDEr-D as is): the authors'
    evaluation of `predictions` (id -> caption text) on `split` of a `levir-cc` dataset. Every pair needs one; a
    subset without pairs is left out (the authors skip it too). `meteor`: a pycocoevalcap ``Meteor()`` to reuse
    (its JVM takes seconds to start); a new one by default."""
    from pycocoevalcap.meteor.meteor import Meteor

    vocab = dataset.vocabulary.index
    references, hypotheses, groups = {}, {}, {name: [] for name in SUBSETS}
    for e in dataset.examples(split):
        references[e.id] = [indices(r, vocab) for r in e.references]
        hypotheses[e.id] = indices(predictions[e.id], vocab)
        groups["total"].append(e.id)
        groups["no-change" if is_no_change(references[e.id][0], vocab) else "change"].append(e.id)
    meteor = Meteor() if meteor is None else meteor
    return {name: get_eval_score([references[i] for i in ids], [hypotheses[i] for i in ids], meteor)
            for name, ids in groups.items() if ids}
