"""Text <-> image-pair retrieval metrics by the CLIP4Clip multi-sentence protocol (used by CLIP4IDC stage 1).

The similarity matrix is [captions x pairs]; `text_pair[i]` is the index of caption i's own pair.
- text -> pair: the rank of each caption's own pair in its row; R@K = % of captions with rank <= K.
- pair -> text: the score of pair j against caption group g is the max over the captions of g; the rank of pair j's
  own group among all groups; R@K = % of pairs (pairs without captions are not queried).
MedR / MeanR are the median / mean rank (1-based).

Tie policy (deterministic, pessimistic): rank = 1 + #candidates scoring strictly higher + #OTHER candidates scoring
exactly the same. A model that gives every candidate the same score therefore ranks last, never first. (The official
code counts tied rows twice or picks an arbitrary order; templated CLEVR captions make ties common.)

>>> import torch
>>> sim = torch.tensor([[0.9, 0.9], [0.1, 0.8], [0.7, 0.2]])
>>> m = retrieval_metrics(sim, [0, 1, 1])
>>> m["t2p_R@1"], m["t2p_MeanR"], m["p2t_R@1"]
(33.33333333333333, 1.6666666666666667, 50.0)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

KS = (1, 5, 10)


def ranks_with_ties(scores: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """1 + #strictly better + #tied others, for each row of `scores` (n x m) and its own column `own` (n)."""
    scores = scores.double()
    target = scores.gather(1, own.view(-1, 1))
    better = (scores > target).sum(1)
    tied_others = (scores == target).sum(1) - 1
    return 1 + better + tied_others


def _summary(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    r = ranks.double()
    out = {f"{prefix}_R@{k}": float((r <= k).double().mean() * 100) for k in KS}
    out[f"{prefix}_MedR"] = float(r.median()) if r.numel() % 2 else float(r.sort().values[r.numel() // 2 - 1: r.numel() // 2 + 1].mean())
    out[f"{prefix}_MeanR"] = float(r.mean())
    return out


def query_ranks(sim: Any, text_pair: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-query ranks: text->pair (one per caption), pair->text (one per queried pair) and the queried pairs.

    >>> t2p, p2t, queried = query_ranks(torch.tensor([[0.9, 0.9], [0.1, 0.8], [0.7, 0.2]]), [0, 1, 1])
    >>> t2p.tolist(), p2t.tolist(), queried.tolist()
    ([2, 1, 2], [1, 2], [0, 1])
    """
    sim = torch.as_tensor(sim).double()
    own = torch.as_tensor(list(text_pair), dtype=torch.long)
    if sim.ndim != 2 or sim.shape[0] != own.numel():
        raise ValueError(f"similarity matrix {tuple(sim.shape)} does not match {own.numel()} captions")
    n_pairs = sim.shape[1]
    t2p = ranks_with_ties(sim, own)
    # pair -> caption group: group score = max over the group's captions
    group = torch.full((n_pairs, n_pairs), float("-inf"), dtype=torch.double)
    group.scatter_reduce_(1, own.view(1, -1).expand(n_pairs, -1), sim.t(), reduce="amax", include_self=True)
    queried = torch.zeros(n_pairs, dtype=torch.bool)
    queried[own] = True
    idx = torch.arange(n_pairs)[queried]
    # groups without captions are not candidates
    candidates = group[idx][:, queried]
    own_pos = torch.cumsum(queried.long(), 0)[idx] - 1
    return t2p, ranks_with_ties(candidates, own_pos), idx


def retrieval_metrics(sim: Any, text_pair: Sequence[int]) -> dict[str, float]:
    """Both directions' R@1/5/10, MedR, MeanR (percent for R@K) from a captions x pairs similarity matrix."""
    return _metrics(query_ranks(sim, text_pair), torch.as_tensor(sim).shape[1])


def _metrics(ranks: tuple[torch.Tensor, torch.Tensor, torch.Tensor], n_pairs: int) -> dict[str, float]:
    t2p, p2t, _ = ranks
    out = _summary(t2p, "t2p")
    out.update(_summary(p2t, "p2t"))
    out["n_captions"], out["n_pairs"] = float(t2p.numel()), float(n_pairs)
    return out


def per_example_ranks(sim: Any, text_pair: Sequence[int], ids: Sequence[str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """`retrieval_metrics` and, from the same ranks, one row per pair: its id, the text->pair ranks of its captions
    and its own pair->text rank (what the bootstrap of R@K resamples). `ids[j]` names pair j.

    >>> metrics, rows = per_example_ranks(torch.tensor([[0.9, 0.9], [0.1, 0.8], [0.7, 0.2]]), [0, 1, 1], ["a", "b"])
    >>> rows
    [{'id': 'a', 't2p': [2], 'p2t': 1}, {'id': 'b', 't2p': [1, 2], 'p2t': 2}]
    >>> metrics["t2p_R@1"] == retrieval_metrics(torch.tensor([[0.9, 0.9], [0.1, 0.8], [0.7, 0.2]]), [0, 1, 1])["t2p_R@1"]
    True
    """
    ranks = query_ranks(sim, text_pair)
    t2p, p2t, queried = ranks
    rows = [{"id": str(i), "t2p": [], "p2t": None} for i in ids]
    for rank, j in zip(t2p.tolist(), text_pair):
        rows[j]["t2p"].append(int(rank))
    for rank, j in zip(p2t.tolist(), queried.tolist()):
        rows[j]["p2t"] = int(rank)
    return _metrics(ranks, len(ids)), rows


def evaluate_retrieval(model: Any, examples: Sequence[Any], *, batch_size: int = 64) -> dict[str, float]:
    """Embed the pairs and the (non-empty) references of `examples` with a `RetrievalModel`; cosine similarity;
    `retrieval_metrics`. Pairs without any reference are dropped."""
    sim, owner, _ = similarity(model, examples, batch_size=batch_size)
    return retrieval_metrics(sim, owner)


def similarity(model: Any, examples: Sequence[Any], *, batch_size: int = 64) -> tuple[torch.Tensor, list[int], list[Any]]:
    """(captions x pairs cosine similarity, each caption's pair index, the pairs kept): pairs without any non-empty
    reference are dropped."""
    import torch.nn.functional as F

    examples = [e for e in examples if any(r.strip() for r in e.references)]
    texts, owner = [], []
    for j, e in enumerate(examples):
        for r in e.references:
            if r.strip():
                texts.append(r)
                owner.append(j)
    pair_emb = torch.cat([torch.as_tensor(model.embed_pairs([e.pair for e in examples[i: i + batch_size]])).float()
                          for i in range(0, len(examples), batch_size)])
    text_emb = torch.cat([torch.as_tensor(model.embed_texts(texts[i: i + batch_size])).float()
                          for i in range(0, len(texts), batch_size)])
    sim = F.normalize(text_emb, dim=-1) @ F.normalize(pair_emb, dim=-1).t()
    return sim, owner, examples
