"""Retrieval R@k / MedR / MeanR (CLIP4Clip multi-sentence protocol) against a brute-force computation with ties."""

from __future__ import annotations

import statistics

import pytest
import torch

from idcbench.metrics.retrieval import evaluate_retrieval, retrieval_metrics


def brute_force(sim: list[list[float]], owner: list[int]) -> dict[str, float]:
    n_pairs = len(sim[0])

    def rank(scores: list[float], own: int) -> int:
        # the documented policy: 1 + strictly better + other candidates with exactly the same score
        return 1 + sum(s > scores[own] for s in scores) + sum(s == scores[own] for k, s in enumerate(scores) if k != own)

    t2p = [rank(row, owner[i]) for i, row in enumerate(sim)]
    groups = sorted(set(owner))
    p2t = []
    for j in groups:
        scores = [max(sim[i][j] for i in range(len(sim)) if owner[i] == g) for g in groups]
        p2t.append(rank(scores, groups.index(j)))
    out = {}
    for name, ranks in (("t2p", t2p), ("p2t", p2t)):
        for k in (1, 5, 10):
            out[f"{name}_R@{k}"] = 100.0 * sum(r <= k for r in ranks) / len(ranks)
        out[f"{name}_MedR"] = float(statistics.median(ranks))
        out[f"{name}_MeanR"] = float(statistics.mean(ranks))
    assert n_pairs >= len(groups)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    n_pairs = 14
    owner = sorted(torch.randint(0, n_pairs, (40,), generator=g).tolist())
    owner = sorted(set(owner) | set(range(n_pairs)))[:n_pairs] + owner  # every pair has a caption
    sim = torch.randint(0, 4, (len(owner), n_pairs), generator=g).float()  # few values: many ties
    got = retrieval_metrics(sim, owner)
    want = brute_force(sim.tolist(), owner)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_with_caption_less_pairs(seed):
    """Some pairs have no caption (CLEVR-Change's distractors): they are text->pair candidates, not pair->text
    queries or candidates; the others have one to several captions."""
    g = torch.Generator().manual_seed(100 + seed)
    n_pairs = 16
    captioned = sorted(torch.randperm(n_pairs, generator=g)[:10].tolist())
    owner = sorted(captioned + [captioned[i] for i in torch.randint(0, 10, (25,), generator=g).tolist()])
    sim = torch.randint(0, 4, (len(owner), n_pairs), generator=g).float()
    got = retrieval_metrics(sim, owner)
    want = brute_force(sim.tolist(), owner)
    assert got["n_pairs"] == n_pairs and got["n_captions"] == len(owner)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_pairs_without_captions_are_candidates_only_for_t2p():
    sim = torch.tensor([[0.5, 0.9, 0.1], [0.2, 0.1, 0.3]])
    got = retrieval_metrics(sim, [0, 0])
    assert got["t2p_R@1"] == 0.0 and got["t2p_MeanR"] == 2.0  # pair 1 beats row 0, pair 2 beats row 1
    assert got["p2t_R@1"] == 100.0  # one group only


def test_constant_scores_rank_last():
    got = retrieval_metrics(torch.zeros(6, 6), list(range(6)))
    assert got["t2p_MedR"] == 6 and got["t2p_R@1"] == 0.0 and got["p2t_MeanR"] == 6


class _Oracle:
    """Embeds a pair and a text onto the same one-hot vector when the text names the pair."""

    def __init__(self, names):
        self.names = names

    def embed_pairs(self, pairs):
        return torch.eye(len(self.names))[[self.names.index(p.before.name) for p in pairs]]

    def embed_texts(self, texts):
        return torch.eye(len(self.names))[[self.names.index(t.split()[0]) for t in texts]]


def test_evaluate_retrieval_with_a_perfect_model():
    from pathlib import Path

    from idcbench.data import Example

    names = [f"p{i}" for i in range(12)]
    examples = [Example(n, Path(n), Path(n + "_a"), (f"{n} one", f"{n} two", "")) for n in names]
    got = evaluate_retrieval(_Oracle(names), examples, batch_size=5)
    assert got["t2p_R@1"] == 100.0 and got["p2t_R@1"] == 100.0 and got["n_captions"] == 24
