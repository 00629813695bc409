"""Scoring speed: idcbench vs pycocoevalcap 1.2 run once per subset, on a CLEVR-Change-sized report.

7,970 predictions with 6 references each; subsets total 7,970 / semantic 3,985 / distractor 3,985 / five change
types of 797; BLEU-1..4, METEOR, ROUGE-L, CIDEr-D. Captions are generated CLEVR-like sentences. The digits must be
identical. Run: ``make bench`` or ``python benchmarks/bench_scoring.py`` (prints both times and the ratio).
"""

from __future__ import annotations

import random
import statistics
import sys
import time

import numpy as np

TYPES = ("color", "material", "add", "drop", "move")
COLORS = ("red", "blue", "green", "gray", "purple", "cyan", "brown", "yellow")
MATERIALS = ("rubber", "metal", "shiny", "matte")
SIZES = ("small", "large", "big", "tiny")
SHAPES = ("cube", "sphere", "cylinder", "ball", "block", "object", "thing")
NOCHANGE = ("there is no change", "nothing has changed", "the scene remains the same", "no change was made",
            "the two scenes seem identical", "there is no difference", "nothing was modified")


def _obj(rng):
    parts = [rng.choice(SIZES) if rng.random() < 0.6 else "", rng.choice(COLORS), rng.choice(MATERIALS)
             if rng.random() < 0.5 else "", rng.choice(SHAPES)]
    return "the " + " ".join(p for p in parts if p)


def _change(rng, kind):
    o = _obj(rng)
    if kind == "color":
        return rng.choice([f"{o} changed to {rng.choice(COLORS)}", f"{o} turned {rng.choice(COLORS)}",
                           f"{o} became {rng.choice(COLORS)}"])
    if kind == "material":
        return rng.choice([f"{o} changed its material", f"{o} became {rng.choice(MATERIALS)}",
                           f"{o} turned into {rng.choice(MATERIALS)} material"])
    if kind == "add":
        return rng.choice([f"someone added {o[4:] and 'a ' + o[4:]}", f"{o} has been newly placed",
                           f"{o} appeared"])
    if kind == "drop":
        return rng.choice([f"{o} has disappeared", f"{o} is missing", f"someone removed {o}", f"{o} is gone"])
    return rng.choice([f"{o} moved", f"{o} changed its location", f"{o} was moved to the left",
                       f"{o} is in a different location"])


def make_report_inputs(seed: int = 0, scenes: int = 3985):
    rng = random.Random(seed)
    preds, refs = {}, {}
    subsets = {"total": [], "semantic": [], "distractor": [], **{t: [] for t in TYPES}}
    for k in range(scenes):
        kind = TYPES[k % 5]
        sc, nsc = f"{k:06d}.png", f"{k:06d}.png_n"
        refs[sc] = [_change(rng, kind) for _ in range(6)]
        preds[sc] = _change(rng, kind if rng.random() < 0.7 else rng.choice(TYPES))
        refs[nsc] = [rng.choice(NOCHANGE) for _ in range(6)]
        preds[nsc] = rng.choice(NOCHANGE) if rng.random() < 0.85 else _change(rng, rng.choice(TYPES))
        subsets["semantic"].append(sc)
        subsets["distractor"].append(nsc)
        subsets[kind].append(sc)
    subsets["total"] = list(refs)
    return preds, refs, subsets


METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D")


def run_idcbench(preds, refs, subsets):
    from idcbench.scoring import score

    report = score(preds, refs, subsets, list(METRICS))
    return {s: dict(report.corpus[s]) for s in subsets}


def run_pycocoevalcap(preds, refs, subsets):
    """What a CLEVR-Change paper runs: the full pycocoevalcap pipeline (tokenizer, each scorer) once per subset."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = {}
    for name, ids in subsets.items():
        tok = PTBTokenizer()
        gts = tok.tokenize({i: [{"caption": c} for c in refs[i]] for i in ids})
        res = tok.tokenize({i: [{"caption": preds[i]}] for i in ids})
        b, _ = Bleu(4).compute_score(gts, res, verbose=0)
        meteor = Meteor()
        m, _ = meteor.compute_score(gts, res)
        del meteor
        r, _ = Rouge().compute_score(gts, res)
        c, _ = Cider().compute_score(gts, res)
        out[name] = dict(zip(METRICS, [*b, m, r, c]))
    return out


def test_bench_idcbench(benchmark):
    preds, refs, subsets = make_report_inputs()
    benchmark.pedantic(run_idcbench, args=(preds, refs, subsets), rounds=1, iterations=1)


def test_bench_pycocoevalcap(benchmark):
    preds, refs, subsets = make_report_inputs()
    benchmark.pedantic(run_pycocoevalcap, args=(preds, refs, subsets), rounds=1, iterations=1)


def bootstrap_rows():
    """per_sample.jsonl-like rows of the benchmark corpus (lower-cased words stand in for PTB tokens; the METEOR
    statistics are made up but well-formed), as `Rescorer` reads them."""
    from idcbench.metrics import bleu

    preds, refs, _ = make_report_inputs()
    rng = random.Random(1)
    rows = []
    for i in refs:
        hyp, rs = preds[i].lower(), [r.lower() for r in refs[i]]
        n = len(hyp.split())
        m = rng.randint(0, n)
        meteor = [n, n + 1, 1, 1, m, m, 0, 0] + [0] * 12 + [min(m, 2), m, m]
        rows.append({"id": i, "scores": {}, "stats": {"hyp": hyp, "refs": rs, "bleu": list(bleu.stats(hyp, rs)),
                                                     "meteor": " ".join(f"{x:.1f}" for x in meteor)}})
    return rows


def run_bootstrap(rescorer, resamples: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = len(rescorer.rows)
    for _ in range(resamples):
        rescorer.score(rng.integers(0, n, size=n), list(METRICS))


def test_bench_rescore(benchmark):
    """20 resamples of 7,970 rows rescored exactly (`Rescorer`, all COCO metrics, pycocoevalcap's digits); the
    leaderboard's intervals use the vectorised `Metric.statistic` of each metric instead (1,000 resamples in seconds)."""
    from idcbench.metrics.reference import Rescorer

    rescorer = Rescorer(bootstrap_rows())
    rescorer.score(np.arange(len(rescorer.rows)), list(METRICS))  # prepares the rows once
    benchmark.pedantic(run_bootstrap, args=(rescorer,), rounds=3, iterations=1)


def main(rounds: int = 3) -> None:
    preds, refs, subsets = make_report_inputs()
    times = {"idcbench": [], "pycocoevalcap": []}
    results = {}
    for _ in range(rounds):
        for name, fn in (("idcbench", run_idcbench), ("pycocoevalcap", run_pycocoevalcap)):
            t = time.perf_counter()
            results[name] = fn(preds, refs, subsets)
            times[name].append(time.perf_counter() - t)
            print(f"{name}: {times[name][-1]:.1f} s", flush=True)
    same = all(results["idcbench"][s][m] == results["pycocoevalcap"][s][m] for s in subsets for m in METRICS)
    a, b = statistics.median(times["idcbench"]), statistics.median(times["pycocoevalcap"])
    print(f"median idcbench {a:.1f} s, pycocoevalcap per subset {b:.1f} s, ratio {b / a:.1f}x, identical: {same}")
    if not same:
        for s in subsets:
            for m in METRICS:
                if results["idcbench"][s][m] != results["pycocoevalcap"][s][m]:
                    print("DIFF", s, m, results["idcbench"][s][m], results["pycocoevalcap"][s][m])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
