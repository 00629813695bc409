"""The reference computation of the COCO protocol: pycocoevalcap 1.2 itself, run as the papers run it."""

from __future__ import annotations


def coco_reference(preds, refs, subsets):
    """pycocoevalcap 1.2: its tokenizer, then each scorer once per subset (exactly what the papers run)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": c} for c in refs[i]] for i in refs})
    res = tok.tokenize({i: [{"caption": preds[i]}] for i in preds})
    meteor = Meteor()
    out, per_image = {}, {}
    for name, ids in subsets.items():
        g = {i: gts[i] for i in ids}
        r = {i: res[i] for i in ids}
        b, b_img = Bleu(4).compute_score(g, r, verbose=0)
        m, m_img = meteor.compute_score(g, r)
        rl, rl_img = Rouge().compute_score(g, r)
        c, c_img = Cider().compute_score(g, r)
        out[name] = {"BLEU-1": b[0], "BLEU-2": b[1], "BLEU-3": b[2], "BLEU-4": b[3], "METEOR": m, "ROUGE-L": rl,
                     "CIDEr-D": c}
        if name == "total":
            per_image = {i: {"BLEU-1": b_img[0][k], "BLEU-2": b_img[1][k], "BLEU-3": b_img[2][k],
                             "BLEU-4": b_img[3][k], "METEOR": m_img[k], "ROUGE-L": rl_img[k], "CIDEr-D": c_img[k]}
                         for k, i in enumerate(ids)}
    return out, per_image, gts, res
