"""CLIP BPE for CLIP4IDC: text ids for retrieval, teacher-forcing targets for captioning, and the official decoding.

Uses open_clip's `SimpleTokenizer` (the same BPE, cleaning and special tokens as OpenAI CLIP and the official code).

>>> tok = ClipBPE()
>>> ids = tok.text_ids(["the cube changed"], length=8)[0].tolist()
>>> ids[0] == tok.sot and tok.eot in ids
True
>>> tok.decode_official(tok.bpe("a cube") + [tok.eot] + tok.bpe("moved"))  # everything after <eot> is cut
'a cube'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

EOT_TEXT = "<|endoftext|>"


@lru_cache(maxsize=1)
def _simple_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


class ClipBPE:
    """Thin wrapper around open_clip's CLIP BPE with the CLIP4IDC conventions (`max_words` = 32, pad id 0)."""

    def __init__(self) -> None:
        self._tok = _simple_tokenizer()
        self.sot: int = self._tok.sot_token_id
        self.eot: int = self._tok.eot_token_id
        self._cache: dict[str, list[int]] = {}
        # open_clip names the special tokens <start_of_text> / <end_of_text>; the official vocabulary (OpenAI CLIP's)
        # <|startoftext|> / <|endoftext|>: decode with the official strings so the post-processing matches exactly.
        self._decoder = dict(self._tok.decoder)
        self._decoder[self.sot], self._decoder[self.eot] = "<|startoftext|>", EOT_TEXT

    def bpe(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self._tok.encode(text)
        return self._cache[text]

    def text_ids(self, texts: Sequence[str], length: int = 32) -> torch.Tensor:
        """Retrieval input: ``<sot> + bpe[:length-2] + <eot>``, zero-padded to `length` (stage 1, official `_get_text`)."""
        out = torch.zeros(len(texts), length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.sot, *self.bpe(text)][: length - 1] + [self.eot]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def caption_ids(self, texts: Sequence[str], length: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: input ``<sot> + bpe[:length-1]``, target ``bpe[:length-1] + <eot>`` (zero-padded) and the
        decoder mask (1 on the input's real positions)."""
        inp = torch.zeros(len(texts), length, dtype=torch.long)
        tgt = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.long)
        for i, text in enumerate(texts):
            words = self.bpe(text)[: length - 1]
            inp[i, : len(words) + 1] = torch.tensor([self.sot, *words])
            tgt[i, : len(words) + 1] = torch.tensor([*words, self.eot])
            mask[i, : len(words) + 1] = 1
        return inp, tgt, mask

    def decode_official(self, ids: Sequence[int]) -> str:
        """The official post-processing: decode all ids, cut at the first ``<|endoftext|>``, then at the first ``!``
        (BPE id 0, the padding id, decodes to ``!``), strip."""
        text = "".join(self._decoder[int(i)] for i in ids)
        text = bytearray([self._tok.byte_decoder[c] for c in text]).decode("utf-8", errors="replace").replace("</w>", " ")
        if EOT_TEXT in text:
            text = text[: text.index(EOT_TEXT)]
        if "!" in text:
            text = text[: text.index("!")]
        return text.strip()
