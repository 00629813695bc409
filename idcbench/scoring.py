"""Predictions + references + subsets -> corpus scores per subset and per-sample scores, as pycocoevalcap gives them.

One evaluation tokenizes every caption once (one JVM), starts METEOR first (its JVM loads while the rest is
computed), computes METEOR segment statistics, BLEU statistics, ROUGE-L and the CIDEr-D n-grams once, then scores
each named subset as its own corpus: the same digits as running pycocoevalcap once per subset.

>>> report = score({"1": "a red cube moved"}, {"1": ["the red cube moved"]}, metrics=["BLEU-1"])  # doctest: +SKIP
>>> round(report.corpus["total"]["BLEU-1"], 6)  # doctest: +SKIP
0.75

`save_report` writes ``metrics.json`` (x100) and ``per_sample.jsonl`` (everything a resample needs);
`load_samples` reads the rows back and `Rescorer` / `rescore` recompute corpus metrics from any multiset of rows
without Java (the leaderboard's bootstrap, for metrics without a vectorised statistic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from idcbench.files import write_atomic
from idcbench.errors import UserError

BLEU = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
DEFAULT_METRICS = (*BLEU, "METEOR", "ROUGE-L", "CIDEr-D")
COCO_ORDER = (*BLEU, "METEOR", "ROUGE-L", "CIDEr-D", "SPICE")
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "per_sample.jsonl"
RETRIEVAL_FILE = "retrieval.jsonl"  # per-pair retrieval ranks of a run (written by the runner)

Progress = Callable[[str, int, int], None]


@dataclass
class ScoreReport:
    """Scores of one evaluation. Values are on pycocoevalcap's 0-1 scale (CIDEr-D as is).

    corpus: subset -> metric -> value (None when the subset is empty or the metric unavailable).
    per_sample: id -> metric -> value within the ``total`` corpus.
    samples: id -> {"hyp", "refs", "bleu", "meteor"}: tokenized texts and statistics, enough to rescore.
    """

    corpus: dict[str, dict[str, float | None]]
    per_sample: dict[str, dict[str, float]]
    samples: dict[str, dict[str, Any]]
    unavailable: dict[str, str]
    info: dict[str, dict[str, Any]]
    coverage: dict[str, Any]
    metrics: list[str]
    subsets: dict[str, list[str]]
    predictions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------------
# metric names
def resolve_metrics(names: Sequence[str] | None) -> list[str]:
    """Canonical metric names, in a stable order; any case, and the names people type: ``bleu`` means BLEU-1..4,
    ``rouge`` ROUGE-L, ``cider`` CIDEr-D, ``bertscore`` BERTScore with the default model. Every command resolves
    its metric names here.

    >>> resolve_metrics(["CIDEr", "BLEU"])
    ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'CIDEr-D']
    >>> resolve_metrics(["bleu,meteor,rouge,cider", "spice"])
    ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr-D', 'SPICE']
    """
    from idcbench.metrics import bertscore, metric_name

    if names is None:
        return list(DEFAULT_METRICS)
    out: list[str] = []
    for raw in names:
        for name in (n.strip() for n in str(raw).split(",")):
            if not name:
                continue
            if name.upper() in ("BLEU", "BLEU-N"):
                out.extend(BLEU)
            elif name.lower() in ("default", "coco"):
                out.extend(DEFAULT_METRICS)
            elif name.lower().startswith(bertscore.PREFIX.lower()):
                inner = name[len(bertscore.PREFIX):]
                model = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else None
                if inner and model is None:
                    raise UserError(f"metric {name!r}: write BERTScore or BERTScore[<model name or folder>]")
                metric = bertscore.metric_name(model)
                _BERTSCORE_MODELS[metric] = model
                out.append(metric)
            else:
                out.append(metric_name(name))
    seen = dict.fromkeys(out)
    if not seen:
        raise UserError(f"--metrics {','.join(map(str, names))!r}: no metric names; give e.g. --metrics CIDEr-D,BLEU "
                        "(or leave it out for the default set)")
    order = {m: i for i, m in enumerate(COCO_ORDER)}
    return sorted(seen, key=lambda m: order.get(m, len(order)))


_BERTSCORE_MODELS: dict[str, str | None] = {}  # metric name -> model given by the user (name or folder)


def _bertscore_model(metric: str) -> str | None:
    from idcbench.metrics import bertscore

    return _BERTSCORE_MODELS.get(metric, metric[len(bertscore.PREFIX) + 1:-1])


# --------------------------------------------------------------------------------------------------------------
# scoring
def _check_inputs(predictions, references, subsets, allow_partial):
    ids = list(references)
    if not ids:
        raise UserError("no references to score against")
    for i in ids:
        refs = references[i]
        if isinstance(refs, str) or not isinstance(refs, Sequence):
            raise UserError(f"references of id {i!r} must be a list of strings")
        if len(refs) == 0:
            raise UserError(f"id {i!r} has no reference caption; every scored id needs at least one")
        if not all(isinstance(r, str) for r in refs):
            raise UserError(f"references of id {i!r} must all be strings")
    for i, cap in predictions.items():
        if not isinstance(cap, str):
            raise UserError(f"prediction for id {i!r} is not a string ({type(cap).__name__})")
    unknown = [p for p in predictions if p not in references]
    missing = [i for i in ids if i not in predictions]
    if unknown:
        raise UserError(f"{len(unknown)} predicted ids are not in the references: given "
                        f"{unknown[0]!r}, expected ids like {(missing or ids)[0]!r}; check the dataset, split or id "
                        "format")
    if missing and not allow_partial:
        given = f"given ids look like {next(iter(predictions))!r}" if predictions else "no prediction given"
        raise UserError(f"{len(missing)} of {len(ids)} reference ids have no prediction (first: "
                        f"{', '.join(map(repr, missing[:5]))}); {given}; pass --allow-partial to score only the "
                        "covered ids")
    covered = [i for i in ids if i in predictions]
    if not covered:
        raise UserError("no reference id has a prediction")
    subsets = dict(subsets) if subsets else {}
    if "total" not in subsets:
        subsets = {"total": ids, **subsets}
    position = {i: k for k, i in enumerate(covered)}
    idx: dict[str, list[int]] = {}
    for name, members in subsets.items():
        if len(set(members)) != len(members):
            raise UserError(f"subset {name!r} lists an id more than once")
        bad = [m for m in members if m not in references]
        if bad:
            raise UserError(f"subset {name!r} names {len(bad)} ids that are not in the references (first: {bad[0]!r})")
        idx[name] = [position[m] for m in members if m in position]
    coverage = {"references": len(ids), "predicted": len(covered), "missing": len(missing),
                "fraction": len(covered) / len(ids), "missing_ids": missing[:20]}
    return covered, idx, coverage


def score(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    subsets: Mapping[str, Sequence[str]] | None = None,
    metrics: Sequence[str] | None = None,
    *,
    allow_partial: bool = False,
    progress: Progress | None = None,
    tags: Mapping[str, Mapping[str, str]] | None = None,
) -> ScoreReport:
    """Score `predictions` (id -> caption) against `references` (id -> captions), per subset (name -> ids; a
    ``total`` subset of all ids is added when absent). See the module docstring."""
    from idcbench.metrics import bleu, cider, ptb, rouge
    from idcbench.metrics.meteor import MeteorProcess

    names = resolve_metrics(metrics)
    covered, idx, coverage = _check_inputs(predictions, references, subsets, allow_partial)
    step = progress or (lambda stage, done, total: None)
    hyps_raw = [predictions[i] for i in covered]
    refs_raw = [list(references[i]) for i in covered]
    n = len(covered)
    corpus: dict[str, dict[str, float | None]] = {s: {} for s in idx}
    per_sample: dict[str, dict[str, float]] = {i: {} for i in covered}
    unavailable: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    total_idx = idx["total"]

    def put(metric: str, per_image: Sequence[float] | None, values: Mapping[str, float]):
        for s in idx:
            corpus[s][metric] = float(values[s]) if s in values else None
        if per_image is not None:
            for k, i in enumerate(covered):
                per_sample[i][metric] = float(per_image[k])

    def each_subset(fn: Callable[[list[int]], float]) -> dict[str, float]:
        return {s: fn(members) for s, members in idx.items() if members}

    coco = [m for m in names if m in COCO_ORDER]
    meteor = MeteorProcess() if "METEOR" in names else None  # first: its JVM loads while the rest runs
    try:
        samples: dict[str, dict[str, Any]] = {}
        if coco:
            step("tokenizing", 0, 1)
            flat = [c for rs in refs_raw for c in rs]
            tokens = ptb.tokenize(hyps_raw + flat)
            hyps = tokens[:n]
            refs, k = [], n
            for rs in refs_raw:
                refs.append(tokens[k:k + len(rs)])
                k += len(rs)
            step("tokenizing", 1, 1)
            if meteor is not None:
                meteor.submit(hyps, refs)
            bleu_rows = [bleu.stats(h, r) for h, r in zip(hyps, refs)]
            samples = {i: {"hyp": hyps[k], "refs": refs[k], "bleu": list(bleu_rows[k]), "meteor": None}
                       for k, i in enumerate(covered)}
            if any(m in names for m in BLEU):
                per_image = [bleu.image_bleu(r) for r in bleu_rows]
                by_subset = each_subset(lambda members: bleu.corpus_bleu(bleu_rows[j] for j in members))
                for q, m in enumerate(BLEU):
                    if m in names:
                        put(m, [p[q] for p in per_image], {s: v[q] for s, v in by_subset.items()})
                        info[m] = {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 bleu_scorer)",
                                   "option": "closest", "tokenizer": "PTB (stanford-corenlp-3.4.1)"}
            step("BLEU", 1, 1)
            if "ROUGE-L" in names:
                rl = np.array([rouge.rouge_l(h, r) for h, r in zip(hyps, refs)])
                put("ROUGE-L", rl, each_subset(lambda members: np.mean(rl[members])))
                info["ROUGE-L"] = {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 rouge.py)",
                                   "beta": 1.2, "tokenizer": "PTB (stanford-corenlp-3.4.1)"}
            step("ROUGE-L", 1, 1)
            if "CIDEr-D" in names:
                scorer = cider.CiderD(hyps, refs)
                results = {}
                for q, (s, members) in enumerate(idx.items()):
                    if members:
                        results[s] = scorer.score(members)
                    step("CIDEr-D", q + 1, len(idx))
                for s in idx:
                    corpus[s]["CIDEr-D"] = float(results[s][0]) if s in results else None
                if "total" in results:
                    for k, j in enumerate(total_idx):
                        per_sample[covered[j]]["CIDEr-D"] = float(results["total"][1][k])
                info["CIDEr-D"] = {"implementation": "idcbench (bit-identical to pycocoevalcap 1.2 cider_scorer)",
                                   "n": 4, "sigma": 6.0, "df": "references of the scored subset",
                                   "tokenizer": "PTB (stanford-corenlp-3.4.1)"}
            if "SPICE" in names:
                _spice(hyps, refs, covered, put, each_subset, unavailable, info, step)
        for m in names:
            if m.startswith("BERTScore"):
                _bertscore(m, hyps_raw, refs_raw, put, each_subset, unavailable, info, step)
        if meteor is not None:
            lines = meteor.collect(lambda d, t: step("METEOR", d, t))
            for k, i in enumerate(covered):
                samples[i]["meteor"] = lines[k]
            scored = [s for s, members in idx.items() if members]
            seg_scores, aggs = meteor.evaluate(lines, [idx[s] for s in scored])
            for s, v in zip(scored, aggs):
                corpus[s]["METEOR"] = v
            for j in total_idx:
                per_sample[covered[j]]["METEOR"] = seg_scores[j]
            info["METEOR"] = {"implementation": "meteor-1.5.jar from pycocoevalcap 1.2, -l en -norm, one process",
                              "aggregate": "the jar's EVAL aggregate of each subset's statistics lines",
                              "tokenizer": "PTB (stanford-corenlp-3.4.1)"}
    finally:
        if meteor is not None:
            meteor.close()
    for s in corpus:
        for m in names:
            corpus[s].setdefault(m, None)
    versions = _versions()
    for m in info:
        info[m].setdefault("version", versions)
    return ScoreReport(
        corpus=corpus, per_sample=per_sample, samples=samples, unavailable=unavailable, info=info,
        coverage=coverage, metrics=names, subsets={s: [covered[j] for j in members] for s, members in idx.items()},
        predictions={i: predictions[i] for i in covered},
        tags={i: dict(tags.get(i, {})) for i in covered} if tags else {},
    )


def _versions() -> dict[str, str]:
    from importlib import metadata

    import idcbench

    try:
        coco = metadata.version("pycocoevalcap")
    except metadata.PackageNotFoundError:
        coco = "unknown"
    return {"idcbench": idcbench.__version__, "pycocoevalcap": coco}


def _spice(hyps, refs, covered, put, each_subset, unavailable, info, step):
    from idcbench.metrics import spice

    ok, why = spice.status()
    if not ok:
        unavailable["SPICE"] = why
        return
    step("SPICE", 0, 1)
    try:
        values, meta = spice.score(hyps, refs)
    except UserError as e:
        unavailable["SPICE"] = str(e)
        return
    arr = np.array(values)
    # pycocoevalcap averages in sorted-id order.
    put("SPICE", values, each_subset(lambda members: np.mean(arr[sorted(members, key=lambda j: covered[j])])))
    info["SPICE"] = meta
    step("SPICE", 1, 1)


def _bertscore(metric, hyps_raw, refs_raw, put, each_subset, unavailable, info, step):
    from idcbench.metrics import bertscore

    step(metric, 0, 1)
    try:
        values, meta = bertscore.score(hyps_raw, refs_raw, _bertscore_model(metric))
    except (UserError, OSError, ImportError) as e:
        unavailable[metric] = str(e).split("\n")[0]
        return
    arr = np.array(values)
    put(metric, values, each_subset(lambda members: np.mean(arr[members])))
    info[metric] = meta
    step(metric, 1, 1)


# --------------------------------------------------------------------------------------------------------------
# run directory files
def metrics_json(report: ScoreReport) -> dict[str, Any]:
    """The content of ``metrics.json``: values x100, null when not computed."""
    return {
        "scale": 100,
        "subsets": {
            s: {"n": len(report.subsets[s]),
                "metrics": {m: (None if report.corpus[s].get(m) is None else report.corpus[s][m] * 100)
                            for m in report.metrics}}
            for s in report.corpus
        },
        "unavailable": dict(report.unavailable),
        "metric_info": report.info,
        "coverage": report.coverage,
    }


def sample_rows(report: ScoreReport) -> list[dict[str, Any]]:
    """The rows of ``per_sample.jsonl``, in reference order."""
    member_of: dict[str, list[str]] = {}
    for name, members in report.subsets.items():
        if name != "total":
            for i in members:
                member_of.setdefault(i, []).append(name)
    rows = []
    for i in report.per_sample:
        st = report.samples.get(i, {})
        rows.append({
            "id": i,
            "prediction": report.predictions.get(i, ""),
            "tags": report.tags.get(i, {}),
            "subsets": member_of.get(i, []),  # every subset but total (the bootstrap of hard-iou needs them)
            "scores": report.per_sample[i],
            "stats": {"hyp": st.get("hyp"), "refs": st.get("refs"), "bleu": st.get("bleu"), "meteor": st.get("meteor")},
        })
    return rows


def save_report(report: ScoreReport, directory: str | Path, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``metrics.json`` (`metrics_json` plus the `extra` keys) and ``per_sample.jsonl`` into `directory`, each
    atomically; return what ``metrics.json`` holds."""
    metrics = {**metrics_json(report), **(extra or {})}
    write_scores(directory, metrics, sample_rows(report))
    return metrics


def write_scores(directory: str | Path, metrics: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``metrics.json`` and ``per_sample.jsonl`` into `directory`, each atomically (samples first)."""
    directory = Path(directory)
    write_atomic(directory / SAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_atomic(directory / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")


def load_samples(directory: str | Path) -> list[dict[str, Any]]:
    """The rows of ``per_sample.jsonl`` (see `save_report`), ready for `rescore`."""
    path = Path(directory) / SAMPLES_FILE
    if not path.is_file():
        raise UserError(f"{path}: not found (is {directory} a scored run directory?)")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}: line {lineno}, column {e.colno}: invalid JSON ({e.msg})") from None
    return rows


# --------------------------------------------------------------------------------------------------------------
# rescoring without Java
class Rescorer:
    """Corpus metrics of resamples of a fixed list of sample rows (`load_samples` rows), without Java.

    Per-row data is prepared once per metric; `score(idx)` scores the corpus ``rows[idx]`` (a row drawn k times
    counts as k documents). BLEU, ROUGE-L and CIDEr-D equal a scorer run on those rows to the last bit, METEOR is
    meteor-1.5's aggregate in Python (equal up to the last bit of ``Math.pow``); SPICE and BERTScore are means of
    the per-sample values.

    >>> from idcbench.metrics import bleu
    >>> row = {"id": "1", "scores": {}, "stats": {"hyp": "a red cube", "refs": ["a red cube"],
    ...                                          "bleu": list(bleu.stats("a red cube", ["a red cube"]))}}
    >>> round(Rescorer([row]).score(np.array([0, 0]), ["BLEU-1"])["BLEU-1"], 6)
    1.0
    """

    def __init__(self, rows: Sequence[dict]):
        self.rows = list(rows)
        self._cache: dict[str, Any] = {}

    def _stats(self, key):
        return [r["stats"][key] for r in self.rows]

    def get(self, what: str):
        if what not in self._cache:
            self._cache[what] = self._build(what)
        return self._cache[what]

    def _build(self, what: str):
        from idcbench.metrics import cider, meteor, rouge

        if what == "bleu":
            return np.array(self._stats("bleu"), dtype=np.int64).reshape(len(self.rows), 10)
        if what == "meteor":
            lines = self._stats("meteor")
            if any(line is None for line in lines):
                raise UserError("rescoring METEOR needs the METEOR statistics of every sample")
            return meteor.summable_table(lines)
        if what == "rouge":
            return np.array([rouge.rouge_l(r["stats"]["hyp"], r["stats"]["refs"]) for r in self.rows])
        if what == "cider":
            return cider.CiderD(self._stats("hyp"), self._stats("refs"))
        # a metric whose corpus value is the mean of its per-sample values (SPICE, BERTScore)
        try:
            return np.array([float(r["scores"][what]) for r in self.rows])
        except KeyError:
            raise UserError(f"cannot rescore {what}: some samples have no per-sample {what} score") from None

    def score(self, idx: np.ndarray, names: Sequence[str]) -> dict[str, float]:
        """Scores (canonical metric `names`, see `resolve_metrics`) of the resample ``rows[idx]`` (order matters only
        for the means' last bits: ``np.mean`` in that order is what pycocoevalcap computes)."""
        from idcbench.metrics import bleu, meteor

        idx = np.asarray(idx, dtype=np.int64)
        if not len(idx):
            raise ValueError("rescore of an empty sample")
        counts = np.bincount(idx, minlength=len(self.rows))
        out: dict[str, float] = {}
        if any(m in BLEU for m in names):
            tot = counts.astype(np.int64) @ self.get("bleu")
            values = bleu.corpus_bleu([tot.tolist()])  # one row: the summed statistics
            for q, m in enumerate(BLEU):
                if m in names:
                    out[m] = values[q]
        for m in names:
            if m in BLEU:
                continue
            if m == "METEOR":
                out[m] = meteor.aggregate(counts.astype(np.float64) @ self.get("meteor"))
            elif m == "ROUGE-L":
                out[m] = float(np.mean(self.get("rouge")[idx]))
            elif m == "CIDEr-D":
                out[m] = float(self.get("cider").score(idx.tolist())[0])
            else:
                out[m] = float(np.mean(self.get(m)[idx]))
        return out


def rescore(samples: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Corpus metrics (0-1 scale) of a multiset of sample rows (`load_samples` rows; a row present k times counts
    as k documents), without Java: `Rescorer` on these rows. To score many resamples of one list of rows, build
    one `Rescorer` and score index vectors (each row is prepared once); the leaderboard's intervals use the
    vectorised statistics of `idcbench.bootstrap_metrics` instead."""
    return Rescorer(samples).score(np.arange(len(samples)), resolve_metrics(metrics))
