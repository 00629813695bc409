"""The CLIP4IDC caption decoder (UniVL style), with a KV cache for fast greedy and beam decoding.

Structure and parameter names follow the official `module_decoder.py`, so official stage-2 checkpoints load 1:1:
embeddings (word / position embeddings TIED to CLIP's text embeddings, LayerNorm, dropout); an "encoder" of
self-attention layers over the pair tokens; decoder layers (causal self-attention, cross-attention to the output of the
encoder layer with the same index, FFN); a BERT LM head whose output weight is the tied word embedding. Every sub-block
is post-LN (``LayerNorm(dropout(dense(x)) + residual)``, eps 1e-12), activations are exact GELU, masks are additive
-10000 as in the official code.

>>> import torch
>>> emb = torch.nn.Parameter(torch.randn(50, 16) * 0.02); pos = torch.nn.Parameter(torch.randn(8, 16) * 0.01)
>>> dec = DecoderModel(emb, pos, heads=2, ffn=32, layers=1).eval()
>>> ids = greedy_decode(dec, torch.randn(3, 5, 16), sot=48, eot=49, max_len=6)
>>> ids.shape
torch.Size([3, 6])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -10000.0


class MultiHeadAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not a multiple of {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.key(x)), self.split(self.value(x))

    def attend(self, q_in: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.sdpa(self.split(self.query(q_in)), k, v, mask)

    def sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attention of split heads (B x h x n x d), merged back to B x n x hidden."""
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask.to(q.dtype), dropout_p=p)
        b, h, n, d = out.shape
        return out.transpose(1, 2).reshape(b, n, h * d)

    def fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Query, key and value projections as one (3 hidden x hidden) weight and bias: one GEMM per decoding step."""
        return (torch.cat([self.query.weight, self.key.weight, self.value.weight]),
                torch.cat([self.query.bias, self.key.bias, self.value.bias]))


class SelfOutput(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual)."""

    def __init__(self, d_in: int, d_out: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.att = MultiHeadAttention(hidden, heads, dropout)
        self.output = SelfOutput(hidden, hidden, dropout)

    def forward(self, q_in, k, v, mask=None):
        return self.output(self.att.attend(q_in, k, v, mask), q_in)


class Intermediate(nn.Module):
    def __init__(self, hidden: int, ffn: int):
        super().__init__()
        self.dense = nn.Linear(hidden, ffn)

    def forward(self, x):
        return F.gelu(self.dense(x))


class EncoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.slf_attn = Attention(hidden, heads, dropout)
        self.intermediate = Intermediate(hidden, ffn)
        self.output = SelfOutput(ffn, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, v = self.slf_attn.att.kv(x)
        x = self.slf_attn(x, k, v)
        return self.output(self.intermediate(x), x)


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float):
        super().__init__()
        self.slf_attn = Attention(hidden, heads, dropout)
        self.enc_attn = Attention(hidden, heads, dropout)
        self.intermediate = Intermediate(hidden, ffn)
        self.output = SelfOutput(ffn, hidden, dropout)

    def forward(self, x, self_k, self_v, self_mask, enc_k, enc_v):
        x = self.slf_attn(x, self_k, self_v, self_mask)
        x = self.enc_attn(x, enc_k, enc_v)
        return self.output(self.intermediate(x), x)


class Embeddings(nn.Module):
    def __init__(self, word: nn.Parameter, position: nn.Parameter, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(*word.shape)
        self.position_embeddings = nn.Embedding(*position.shape)
        self.word_embeddings.weight = word
        self.position_embeddings.weight = position
        self.LayerNorm = nn.LayerNorm(word.shape[1], eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        pos = torch.arange(start, start + ids.shape[1], device=ids.device)
        return self.dropout(self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(pos)[None]))


class _Transform(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        return self.LayerNorm(F.gelu(self.dense(x)))


class _Predictions(nn.Module):
    def __init__(self, word: nn.Parameter):
        super().__init__()
        self.transform = _Transform(word.shape[1])
        self.decoder = nn.Linear(word.shape[1], word.shape[0], bias=False)
        self.decoder.weight = word
        self.bias = nn.Parameter(torch.zeros(word.shape[0]))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class _Head(nn.Module):
    def __init__(self, word: nn.Parameter):
        super().__init__()
        self.predictions = _Predictions(word)


class Classifier(nn.Module):
    def __init__(self, word: nn.Parameter):
        super().__init__()
        self.cls = _Head(word)

    def forward(self, x):
        return self.cls.predictions(x)


class _Stack(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


@dataclass
class DecodeCache:
    """What incremental decoding keeps between steps, per decoder layer: the cross-attention K/V of the paired encoder
    layer, the fused self-attention Q/K/V projection, and preallocated self-attention K/V buffers (B x heads x
    capacity x head_dim) of which the first `length` positions are filled."""

    enc_kv: list[tuple[torch.Tensor, torch.Tensor]]
    qkv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    self_k: list[torch.Tensor | None] = field(default_factory=list)
    self_v: list[torch.Tensor | None] = field(default_factory=list)
    capacity: int = 77
    length: int = 0

    def select(self, index: torch.Tensor) -> "DecodeCache":
        """The cache of the rows `index` (beam reordering, or dropping finished captions)."""
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return DecodeCache([(pick(k), pick(v)) for k, v in self.enc_kv], self.qkv, [pick(k) for k in self.self_k],
                           [pick(v) for v in self.self_v], self.capacity, self.length)


class DecoderModel(nn.Module):
    """Caption decoder over pair tokens (B x N x hidden). `layers` encoder layers pair with `layers` decoder layers."""

    def __init__(self, word_embeddings: nn.Parameter, position_embeddings: nn.Parameter, *, heads: int = 8,
                 ffn: int = 2048, layers: int = 3, dropout: float = 0.1, init_std: float = 0.02):
        super().__init__()
        hidden = word_embeddings.shape[1]
        self.embeddings = Embeddings(word_embeddings, position_embeddings, dropout)
        self.encoder = _Stack([EncoderLayer(hidden, heads, ffn, dropout) for _ in range(layers)])
        self.decoder = _Stack([DecoderLayer(hidden, heads, ffn, dropout) for _ in range(layers)])
        self.classifier = Classifier(word_embeddings)
        self.register_buffer("vocab_ids", None, persistent=True)  # see `restrict_vocab`
        self._init(init_std)

    def restrict_vocab(self, ids: torch.Tensor | None) -> None:
        """Score only these token ids (sorted, unique), e.g. the training vocabulary of a small dataset; None = all.
        A CPU-speed option (not the official behaviour): the 49,408-way projection dominates small decoders."""
        dev = self.classifier.cls.predictions.bias.device
        self.vocab_ids = None if ids is None else torch.unique(torch.as_tensor(ids, dtype=torch.long)).to(dev)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary (or over `vocab_ids` when restricted)."""
        if self.vocab_ids is None:
            return self.classifier(x)
        pred = self.classifier.cls.predictions
        return F.linear(pred.transform(x), pred.decoder.weight[self.vocab_ids], pred.bias[self.vocab_ids])

    def to_token(self, index: torch.Tensor) -> torch.Tensor:
        """Map `classify` indices to token ids."""
        return index if self.vocab_ids is None else self.vocab_ids[index]

    def to_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map token ids to `classify` indices (tokens outside a restricted vocabulary map to -100, ignored by CE)."""
        if self.vocab_ids is None:
            return tokens
        pos = torch.searchsorted(self.vocab_ids, tokens).clamp(max=len(self.vocab_ids) - 1)
        return torch.where(self.vocab_ids[pos] == tokens, pos, torch.full_like(pos, -100))

    def _init(self, std: float) -> None:
        # BERT init of the official `init_weights`, on the decoder's own modules only (tied embeddings stay CLIP's).
        tied = {id(self.embeddings.word_embeddings.weight), id(self.embeddings.position_embeddings.weight)}
        for m in self.modules():
            if isinstance(m, nn.Linear):
                if id(m.weight) not in tied:
                    nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def encode(self, pair_tokens: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every encoder layer (decoder layer i reads encoder layer i)."""
        outs, x = [], pair_tokens.to(self.embeddings.LayerNorm.weight.dtype)  # float16 CLIP tokens (official-fp16)
        for layer in self.encoder.layer:
            x = layer(x)
            outs.append(x)
        return outs

    def hidden(self, ids: torch.Tensor, enc_outs: list[torch.Tensor], answer_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder hidden states for all positions (teacher forcing / full recompute), official masking."""
        b, n = ids.shape
        causal = torch.triu(torch.ones(n, n, device=ids.device), diagonal=1)[None, None]
        if answer_mask is not None:
            causal = ((1.0 - answer_mask[:, None, None, :].float()) + causal).gt(0).float()
        mask = causal * MASK_VALUE
        x = self.embeddings(ids)
        for layer, enc in zip(self.decoder.layer, enc_outs):
            k, v = layer.slf_attn.att.kv(x)
            ek, ev = layer.enc_attn.att.kv(enc)
            x = layer(x, k, v, mask, ek, ev)
        return x

    def forward(self, ids: torch.Tensor, pair_tokens: torch.Tensor, answer_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits B x L x V; like the official forward, the encoder runs on every call."""
        return self.classify(self.hidden(ids, self.encode(pair_tokens), answer_mask))

    def start(self, pair_tokens: torch.Tensor, capacity: int | None = None) -> DecodeCache:
        """Run the encoder once and keep what every step needs; `capacity` (default: the position embeddings' length)
        is the longest prefix the cache can hold."""
        enc = self.encode(pair_tokens)
        n = len(self.decoder.layer)
        cap = int(capacity or self.embeddings.position_embeddings.num_embeddings)
        return DecodeCache([layer.enc_attn.att.kv(e) for layer, e in zip(self.decoder.layer, enc)],
                           [layer.slf_attn.att.fused_qkv() for layer in self.decoder.layer], [None] * n, [None] * n, cap)

    def step(self, ids: torch.Tensor, cache: DecodeCache) -> torch.Tensor:
        """Logits (B x V) for the next token after feeding `ids` (B x 1) at position `cache.length`; updates `cache`.

        Equal to the last position of `forward` on the whole prefix (tested), at one position's cost: the encoder, the
        cross-attention K/V and the earlier positions' self-attention K/V come from the cache."""
        t = cache.length
        if t >= cache.capacity:
            raise ValueError(f"decoding past the cache capacity ({cache.capacity} positions)")
        x = self.embeddings(ids, start=t)
        for i, layer in enumerate(self.decoder.layer):
            att = layer.slf_attn.att
            q, k, v = (att.split(y) for y in F.linear(x, *cache.qkv[i]).chunk(3, dim=-1))
            if cache.self_k[i] is None:
                shape = (k.shape[0], k.shape[1], cache.capacity, k.shape[3])
                cache.self_k[i], cache.self_v[i] = k.new_empty(shape), v.new_empty(shape)
            cache.self_k[i][:, :, t: t + 1] = k
            cache.self_v[i][:, :, t: t + 1] = v
            x = layer.slf_attn.output(att.sdpa(q, cache.self_k[i][:, :, : t + 1], cache.self_v[i][:, :, : t + 1]), x)
            x = layer.enc_attn(x, *cache.enc_kv[i])
            x = layer.output(layer.intermediate(x), x)
        cache.length += 1
        return self.classify_last(x[:, -1])

    def classify_last(self, x: torch.Tensor) -> torch.Tensor:
        """`classify` for decoding steps (B x hidden): the output weight is read as a contiguous (hidden x V) copy,
        made once per weight version; a (few x hidden) by (hidden x V) product streams it faster than the tied
        (V x hidden) layout does."""
        pred = self.classifier.cls.predictions
        w = pred.decoder.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device, None if self.vocab_ids is None else self.vocab_ids.data_ptr())
        if getattr(self, "_head_key", None) != key:
            rows = w if self.vocab_ids is None else w[self.vocab_ids]
            self._head_t = rows.detach().t().contiguous()
            self._head_key = key
        bias = pred.bias if self.vocab_ids is None else pred.bias[self.vocab_ids]
        h = pred.transform(x)
        return torch.addmm(bias.to(h.dtype), h, self._head_t.to(h.dtype))


@torch.no_grad()
def greedy_decode(decoder: DecoderModel, pair_tokens: torch.Tensor, *, sot: int, eot: int, max_len: int = 32,
                  early_stop: bool = True) -> torch.Tensor:
    """Greedy ids (B x max_len, without <sot>) with a KV cache. With `early_stop`, a row that has produced <eot> leaves
    the batch (its remaining positions are <eot>; the official post-processing cuts there anyway) and decoding ends
    when every row has; the ids up to each row's first <eot> are those of `greedy_decode_official` (tested)."""
    b, dev = pair_tokens.shape[0], pair_tokens.device
    cache = decoder.start(pair_tokens, capacity=max_len)
    out = torch.full((b, max_len), eot, dtype=torch.long, device=dev)
    rows = torch.arange(b, device=dev)  # the rows of `out` still being decoded
    nxt = torch.full((b, 1), sot, dtype=torch.long, device=dev)
    for t in range(max_len):
        tok = decoder.to_token(decoder.step(nxt, cache).float().argmax(-1))
        out[rows, t] = tok
        if early_stop and t + 1 < max_len:
            alive = tok != eot
            if not bool(alive.all()):
                if not bool(alive.any()):
                    break
                keep = alive.nonzero().squeeze(1)
                cache, rows, tok = cache.select(keep), rows[keep], tok[keep]
        nxt = tok[:, None]
    return out


@torch.no_grad()
def greedy_decode_official(decoder: DecoderModel, pair_tokens: torch.Tensor, *, sot: int, max_len: int = 32) -> torch.Tensor:
    """The official strategy: `max_len` steps, each recomputing the whole decoder (encoder included) on the prefix."""
    ids = torch.full((pair_tokens.shape[0], 1), sot, dtype=torch.long, device=pair_tokens.device)
    for _ in range(max_len):
        logits = decoder(ids, pair_tokens, torch.ones_like(ids))
        ids = torch.cat([ids, decoder.to_token(logits[:, -1].float().argmax(-1, keepdim=True))], dim=1)
    return ids[:, 1:]


class _CachedSteps:
    """Next-token logits from the KV cache."""

    def __init__(self, decoder: DecoderModel, pair_tokens: torch.Tensor, max_len: int):
        self.decoder, self.cache = decoder, decoder.start(pair_tokens, capacity=max_len)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.step(ids, self.cache)

    def select(self, index: torch.Tensor) -> None:
        self.cache = self.cache.select(index)


class _RecomputedSteps:
    """Next-token logits from the whole decoder on the whole prefix (the official cost; the reference for tests)."""

    def __init__(self, decoder: DecoderModel, pair_tokens: torch.Tensor, max_len: int):
        self.decoder, self.pair_tokens, self.prefix = decoder, pair_tokens, None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.prefix = ids if self.prefix is None else torch.cat([self.prefix, ids], dim=1)
        return self.decoder(self.prefix, self.pair_tokens, torch.ones_like(self.prefix))[:, -1]

    def select(self, index: torch.Tensor) -> None:
        self.prefix = self.prefix.index_select(0, index)
        self.pair_tokens = self.pair_tokens.index_select(0, index)


@torch.no_grad()
def beam_decode(decoder: DecoderModel, pair_tokens: torch.Tensor, *, sot: int, eot: int, max_len: int = 32,
                beam: int = 3, length_penalty: float = 0.0, cached: bool = True) -> torch.Tensor:
    """Beam search. A hypothesis ends at <eot>; the best finished one by ``sum(log p) / len ** length_penalty`` wins.
    Returns B x max_len ids (padded with <eot>). `cached=False` recomputes the whole decoder at every step (same
    search, the official cost): the reference the KV cache is tested against."""
    b, dev = pair_tokens.shape[0], pair_tokens.device
    steps = (_CachedSteps if cached else _RecomputedSteps)(decoder, pair_tokens.repeat_interleave(beam, dim=0), max_len)
    scores = torch.full((b, beam), float("-inf"), device=dev)
    scores[:, 0] = 0.0
    seqs = torch.full((b * beam, 0), eot, dtype=torch.long, device=dev)
    nxt = torch.full((b * beam, 1), sot, dtype=torch.long, device=dev)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    for t in range(max_len):
        logp = steps(nxt).float().log_softmax(-1)  # (b*beam) x V
        vocab = logp.shape[-1]
        total = (scores.view(-1, 1) + logp).view(b, beam * vocab)
        top, idx = total.topk(2 * beam, dim=-1)
        words = decoder.to_token(idx % vocab).tolist()
        top_l, origins = top.tolist(), (idx // vocab).tolist()
        new_scores = torch.full((b, beam), float("-inf"), device=dev)
        src = torch.zeros(b, beam, dtype=torch.long, device=dev)
        tok = torch.full((b, beam), eot, dtype=torch.long, device=dev)
        for i in range(b):
            k = 0
            for s, origin, word in zip(top_l[i], origins[i], words[i]):
                if s == float("-inf"):
                    break
                if word == eot or t == max_len - 1:
                    seq = seqs[i * beam + origin].tolist() + [word]
                    finished[i].append((s / (len(seq) ** length_penalty), seq))
                    continue
                if k < beam:
                    new_scores[i, k], src[i, k], tok[i, k] = s, origin, word
                    k += 1
            best_done = max((f[0] for f in finished[i]), default=float("-inf"))
            if len(finished[i]) >= beam and best_done >= new_scores[i].max().item():
                new_scores[i] = float("-inf")
        flat = (src + torch.arange(b, device=dev)[:, None] * beam).view(-1)
        seqs = torch.cat([seqs.index_select(0, flat), tok.view(-1, 1)], dim=1)
        steps.select(flat)
        scores, nxt = new_scores, tok.view(-1, 1)
        if bool(torch.isinf(scores).all()):
            break
    out = torch.full((b, max_len), eot, dtype=torch.long, device=dev)
    for i in range(b):
        if finished[i]:
            seq = max(finished[i], key=lambda f: f[0])[1]
        else:
            seq = seqs[i * beam].tolist()
        out[i, : len(seq)] = torch.tensor(seq[:max_len], device=dev)
    return out
