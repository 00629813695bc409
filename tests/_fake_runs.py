"""Tiny fake run directories for the leaderboard / compare / report tests.

Captions are treated as already PTB-tokenised (lower case, no punctuation), so the scores are pycocoevalcap's own
BLEU / ROUGE-L / CIDEr-D of exactly these strings, computed here per subset (each subset its own corpus); METEOR
and SPICE are reported unavailable (no Java needed).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

COLORS = ("red", "blue", "green", "gray", "purple", "cyan", "brown", "yellow")
SHAPES = ("cube", "sphere", "cylinder")
TYPES = ("color", "material", "add", "drop", "move")


def clevr_like(n: int, seed: int = 0) -> list[tuple[str, list[str], dict[str, str]]]:
    """`n` examples (id, references, tags) with CLEVR-Change-style captions, alternating semantic / distractor."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        obj = f"the {rng.choice(COLORS)} {rng.choice(SHAPES)}"
        if i % 2:
            refs = ["there is no change", "nothing has changed", "the scene is the same as before"]
            tags = {"kind": "distractor", "type": "distractor", "scene": f"{i // 2:06d}"}
        else:
            t = TYPES[(i // 2) % len(TYPES)]
            verb = {"color": f"changed to {rng.choice(COLORS)}", "material": "became metal", "add": "has been added",
                    "drop": "has disappeared", "move": "moved"}[t]
            refs = [f"{obj} {verb}", f"someone {verb.split()[0]} {obj}", f"{obj} was {verb.split()[-1]}"]
            tags = {"kind": "semantic", "type": t, "scene": f"{i // 2:06d}"}
        out.append((f"{i:06d}", refs, tags))
    return out


def subsets_of(examples: Sequence[tuple[str, list[str], Mapping[str, str]]]) -> dict[str, list[str]]:
    subsets: dict[str, list[str]] = {"total": [e[0] for e in examples]}
    for eid, _, tags in examples:
        if tags.get("kind"):
            subsets.setdefault(tags["kind"], []).append(eid)
        if tags.get("type") in TYPES:
            subsets.setdefault(tags["type"], []).append(eid)
    return dict(sorted(subsets.items()))


def corpus_scores(preds: Mapping[str, str], refs: Mapping[str, list[str]], ids: Sequence[str]) -> dict[str, float]:
    gts = {i: refs[i] for i in ids}
    res = {i: [preds[i]] for i in ids}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-1": bleu[0], "BLEU-4": bleu[3], "ROUGE-L": float(rouge), "CIDEr-D": float(cider)}


def write_run(runs_dir: Path, dataset: str, model: str, examples, preds: Mapping[str, str], *, seed: int = 0,
              split: str = "test", config: Mapping | None = None, samples: bool = True,
              retrieval: Mapping[str, float] | None = None, data_root: str | None = None,
              manifest: str = "m" * 8, limit: int | None = None) -> Path:
    """Write run_spec.json, metrics.json, per_sample.jsonl, predictions.jsonl and DONE; return the run dir."""
    config = dict(config or {})
    spec = {"model": model, "config": config, "dataset": dataset, "split": split, "manifest": manifest,
            "seed": seed, "train": False, "decoding": {}, "limit": limit, "version": 1}
    spec_hash = f"{abs(hash(json.dumps(spec, sort_keys=True))) % 16**16:016x}"
    run = Path(runs_dir) / dataset / model / spec_hash
    run.mkdir(parents=True, exist_ok=True)
    refs = {e[0]: list(e[1]) for e in examples}
    tags = {e[0]: dict(e[2]) for e in examples}
    subsets = subsets_of(examples)
    metrics = {
        "scale": 100,
        "subsets": {name: {"n": len(ids), "metrics": {**{k: v * 100 for k, v in corpus_scores(preds, refs, ids).items()},
                                                       "METEOR": None, "SPICE": None}}
                    for name, ids in subsets.items()},
        "unavailable": {"METEOR": "not computed in tests", "SPICE": "not computed in tests"},
        "metric_info": {}, "coverage": {"predictions": len(preds), "references": len(refs)},
        "run": {"model": model, "dataset": dataset, "split": split, "seed": seed, "spec_hash": spec_hash,
                "world_size": 1, "n": len(examples)},
    }
    if retrieval:
        metrics["retrieval"] = dict(retrieval)
    (run / "run_spec.json").write_text(json.dumps({"spec_hash": spec_hash, "spec": spec, "world_size": 1,
                                                   **({"data_root": data_root} if data_root else {})}, indent=1))
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1))
    (run / "predictions.jsonl").write_text("".join(json.dumps({"id": i, "caption": preds[i]}) + "\n" for i in refs))
    if samples:
        ids = list(refs)
        per_cider = Cider().compute_score({i: refs[i] for i in ids}, {i: [preds[i]] for i in ids})[1]
        per_rouge = Rouge().compute_score({i: refs[i] for i in ids}, {i: [preds[i]] for i in ids})[1]
        lines = []
        for k, i in enumerate(ids):
            comps = cook_test(preds[i], cook_refs(refs[i]), eff="closest")
            bleu_row = [comps["testlen"], comps["reflen"], *comps["guess"], *comps["correct"]]
            # the row layout of idcbench.scoring.save_report
            lines.append(json.dumps({"id": i, "prediction": preds[i], "tags": tags[i],
                                     "scores": {"CIDEr-D": float(per_cider[k]), "ROUGE-L": float(per_rouge[k])},
                                     "stats": {"hyp": preds[i], "refs": refs[i], "bleu": bleu_row, "meteor": None}}))
        (run / "per_sample.jsonl").write_text("\n".join(lines) + "\n")
    (run / "DONE").write_text(json.dumps({"spec_hash": spec_hash}))
    return run


def predictions(examples, quality: float, seed: int = 0) -> dict[str, str]:
    """Predictions that copy the first reference with probability `quality`, else a generic wrong caption."""
    rng = random.Random(seed)
    out = {}
    for eid, refs, _ in examples:
        out[eid] = refs[0] if rng.random() < quality else rng.choice(["the cube moved", "there is no change",
                                                                      "a sphere changed to red"])
    return out
