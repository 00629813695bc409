"""CLIP4IDC decoding: the KV-cached greedy and beam searches give the ids of the full recompute (the official cost)."""

from __future__ import annotations

import pytest
import torch

from idcbench.models.clip4idc.decoder import DecoderModel, beam_decode, greedy_decode, greedy_decode_official

SOT, EOT = 48, 49


def decoder(seed: int, layers: int = 2) -> DecoderModel:
    torch.manual_seed(seed)
    emb = torch.nn.Parameter(torch.randn(50, 32) * 0.5)
    pos = torch.nn.Parameter(torch.randn(40, 32) * 0.1)
    dec = DecoderModel(emb, pos, heads=4, ffn=64, layers=layers).eval()
    for m in dec.modules():  # weights large enough that the pair tokens, not the bias, decide the caption
        if isinstance(m, torch.nn.Linear) and m.weight is not emb:
            torch.nn.init.normal_(m.weight, std=0.3)
    # a bias that makes captions end at different lengths, so that early stopping and beams finishing both happen
    bias = dec.classifier.cls.predictions.bias
    with torch.no_grad():
        torch.nn.init.normal_(bias, std=1.0)
        bias[EOT] = bias.max() + 5.0
    return dec


def first_eot(row: list[int]) -> list[int]:
    return row[: row.index(EOT) + 1] if EOT in row else row


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_cached_greedy_equals_the_official_full_recompute(seed):
    dec = decoder(seed)
    tokens = torch.randn(9, 7, 32)
    full = greedy_decode_official(dec, tokens, sot=SOT, max_len=16)
    assert torch.equal(greedy_decode(dec, tokens, sot=SOT, eot=EOT, max_len=16, early_stop=False), full)
    early = greedy_decode(dec, tokens, sot=SOT, eot=EOT, max_len=16)  # finished rows leave the batch
    assert [first_eot(r) for r in early.tolist()] == [first_eot(r) for r in full.tolist()]
    lengths = {len(first_eot(r)) for r in full.tolist()}
    assert len(lengths) > 2  # rows stop at different steps


@pytest.mark.parametrize("seed,length_penalty", [(0, 0.0), (1, 1.0), (3, 0.6), (1, 0.0)])
def test_cached_beam_equals_beam_with_full_recompute(seed, length_penalty):
    dec = decoder(seed)
    tokens = torch.randn(5, 7, 32)
    kw = dict(sot=SOT, eot=EOT, max_len=12, beam=3, length_penalty=length_penalty)
    assert torch.equal(beam_decode(dec, tokens, **kw), beam_decode(dec, tokens, cached=False, **kw))


def test_restricted_vocabulary_decodes_like_the_full_recompute():
    dec = decoder(5)
    dec.restrict_vocab([3, 7, 11, 20, 31, EOT])
    tokens = torch.randn(6, 7, 32)
    full = greedy_decode_official(dec, tokens, sot=SOT, max_len=10)
    assert set(full.unique().tolist()) <= {3, 7, 11, 20, 31, EOT}
    assert torch.equal(greedy_decode(dec, tokens, sot=SOT, eot=EOT, max_len=10, early_stop=False), full)
    kw = dict(sot=SOT, eot=EOT, max_len=10, beam=2)
    assert torch.equal(beam_decode(dec, tokens, **kw), beam_decode(dec, tokens, cached=False, **kw))


def test_step_logits_follow_weight_updates():
    """The head's transposed copy is rebuilt when the tied weight changes in place (training between evaluations)."""
    dec = decoder(6)
    tokens = torch.randn(2, 7, 32)
    ids = torch.full((2, 1), SOT)
    before = dec.step(ids, dec.start(tokens)).clone()
    with torch.no_grad():
        dec.classifier.cls.predictions.decoder.weight.mul_(2.0)
    after = dec.step(ids, dec.start(tokens))
    torch.testing.assert_close(after, dec(ids, tokens)[:, -1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


def test_decoding_past_the_cache_capacity_is_an_error():
    dec = decoder(7)
    cache = dec.start(torch.randn(1, 7, 32), capacity=1)
    dec.step(torch.full((1, 1), SOT), cache)
    with pytest.raises(ValueError, match="capacity"):
        dec.step(torch.full((1, 1), SOT), cache)
