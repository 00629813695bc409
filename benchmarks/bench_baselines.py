"""Speed of the nearest-neighbour baseline's two inner loops at CLEVR-Change size.

- exact k-NN (k = 10) of 7,970 test pairs among 67,660 training pairs, 1,536-d embeddings (ViT-B/32 pooled x 3), by
  chunked matrix product on the CPU;
- CIDEr-D consensus over 60 candidates (10 neighbours x 6 captions) per query, vectorised, against the pairwise loop
  over pycocoevalcap-style single-reference scores it replaces.

`make bench` runs it.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from idcbench.models.baselines.nearest_neighbour import knn
from idcbench.models.baselines.text import cider_d_matrix, consensus_choice, document_frequency, tokenize

COLORS = ("red", "blue", "green", "gray", "purple", "cyan", "brown", "yellow")


def _captions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        obj = f"the {rng.choice(['small', 'large'])} {rng.choice(COLORS)} {rng.choice(['cube', 'sphere', 'cylinder'])}"
        out.append(rng.choice([f"{obj} changed to {rng.choice(COLORS)}", f"{obj} has been added", f"{obj} is missing",
                               f"{obj} moved", "there is no change", f"someone moved {obj}"]))
    return out


@pytest.fixture(scope="module")
def consensus_data():
    corpus = [_captions(6, seed=i) for i in range(2000)]
    df, ref_len = document_frequency([[tokenize(c) for c in refs] for refs in corpus])
    rng = random.Random(1)
    queries = [[c for refs in rng.sample(corpus, 10) for c in refs] for _ in range(20)]
    return queries, df, ref_len


def test_knn_clevr_size(benchmark):
    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    index = torch.nn.functional.normalize(torch.randn(67660, 1536, generator=g), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(7970, 1536, generator=g), dim=1)
    result = benchmark.pedantic(knn, args=(queries, index, 10, 1024), rounds=1, iterations=1)
    assert len(result) == 7970


def test_consensus_vectorised(benchmark, consensus_data):
    queries, df, ref_len = consensus_data
    benchmark(lambda: [consensus_choice(q, df, ref_len) for q in queries])


def test_consensus_pairwise_loop(benchmark, consensus_data):
    queries, df, ref_len = consensus_data

    def loop():
        out = []
        for q in queries:
            toks = [tokenize(c) for c in q]
            means = [np.mean([cider_d_matrix([toks[i], toks[j]], df, ref_len)[0, 1]
                              for j in range(len(q)) if j != i]) for i in range(len(q))]
            out.append(int(np.argmax(means)))
        return out

    benchmark.pedantic(loop, rounds=1, iterations=1)
