"""Text helpers of the baselines against reference computations: CIDEr-D (pycocoevalcap), consensus, k-NN, vocabulary."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from pycocoevalcap.cider.cider import Cider

from idcbench.models.baselines.nearest_neighbour import knn
from idcbench.models.baselines.text import (Vocabulary, cider_d_matrix, consensus_choice, corpus_cider_d,
                                            document_frequency, normalize_caption, tokenize)

WORDS = "the a red blue green cube sphere moved was added removed changed to its color left right small large".split()


def _corpus(seed: int, n: int = 40):
    rng = random.Random(seed)
    refs = {str(i): [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(rng.randint(1, 4))]
            for i in range(n)}
    hyps = {i: " ".join(rng.choices(WORDS, k=rng.randint(1, 9))) for i in refs}
    return refs, hyps


@pytest.mark.parametrize("seed", [0, 1])
def test_corpus_cider_d_equals_pycocoevalcap(seed):
    refs, hyps = _corpus(seed)
    ours, per = corpus_cider_d(refs, hyps)
    theirs, arr = Cider().compute_score(refs, {i: [h] for i, h in hyps.items()})
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert [per[i] for i in refs] == pytest.approx(list(arr), abs=1e-12)


@pytest.mark.parametrize("seed", [2, 3])
def test_cider_d_matrix_equals_pycocoevalcap(seed):
    """M[h, r] with the df of a corpus equals pycocoevalcap's score of h against r in that corpus; a row mean over
    several references equals its multi-reference score."""
    refs, hyps = _corpus(seed)
    ids = list(refs)
    _, arr = Cider().compute_score(refs, {i: [h] for i, h in hyps.items()})
    df, ref_len = document_frequency([[r.split() for r in refs[i]] for i in ids])
    for i, expected in zip(ids, arr):
        m = cider_d_matrix([hyps[i].split()] + [r.split() for r in refs[i]], df, ref_len)
        assert m[0, 1:].mean() == pytest.approx(expected, abs=1e-12)


def test_consensus_choice_brute_force():
    rng = random.Random(4)
    corpus = [[" ".join(rng.choices(WORDS[:8], k=rng.randint(2, 6)))] for _ in range(30)]
    df, ref_len = document_frequency([[r.split() for r in refs] for refs in corpus])
    for trial in range(5):
        cands = [c[0] for c in rng.sample(corpus, 8)] + [corpus[0][0]] * (trial % 3)
        means = []
        for i, c in enumerate(cands):
            others = [o for j, o in enumerate(cands) if j != i]
            means.append(np.mean([cider_d_matrix([c.split(), o.split()], df, ref_len)[0, 1] for o in others]))
        best = max(means)
        assert consensus_choice(cands, df, ref_len) == next(i for i, v in enumerate(means) if v >= best - 1e-12)
    assert consensus_choice(["only one"], df, ref_len) == 0


def test_knn_exact_with_ties_by_index():
    g = torch.Generator().manual_seed(0)
    index = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    index[10] = index[3]  # exact duplicates: equal similarity, the lower index first
    index[40] = index[3]
    queries = torch.cat([index[3:4], torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)])
    got = knn(queries, index, k=5, chunk_size=3)
    sims = (queries @ index.T).numpy()
    for q, row in enumerate(sims):
        expected = sorted(range(50), key=lambda j: (-row[j], j))[:5]
        assert got[q] == expected
    assert got[0][:3] == [3, 10, 40]


def test_tokenize_normalize_vocabulary():
    assert tokenize("The red cube, it MOVED. Really?") == ["the", "red", "cube", ",", "it", "moved", "really"]
    assert normalize_caption("  The Cube  moved . ") == "the cube moved"
    vocab = Vocabulary.build(["a red cube", "a blue cube", "a cube"], min_count=2)
    assert vocab.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "cube"]
    ids = vocab.encode("a red cube", max_len=10)
    assert ids == [Vocabulary.BOS, 4, Vocabulary.UNK, 5, Vocabulary.EOS]
    assert vocab.decode(ids[1:]) == "a <unk> cube"
    assert vocab.encode("a a a a", max_len=2) == [Vocabulary.BOS, 4, 4, Vocabulary.EOS]
