"""The metric interface: a `Metric` is one object, a `Corpus` is what the metrics of one evaluation share.

A metric knows its name and spellings, its direction and its place in tables, how it scores a corpus (every subset
as its own corpus, as pycocoevalcap would), what it keeps per sample so that any resample can be rescored, and its
vectorised bootstrap statistic over those rows. Scoring (`idcbench.scoring.score`), the run directory, the tables
and the report look metrics up by name in `idcbench.registry.METRICS` and ask them; none of them knows a metric by
name. A new metric is one file (a `Metric` subclass and a `register` call).

>>> class Length(Metric):
...     name, description, order, tokens = "Length", "mean hypothesis length in words", 90, False
...     def score(self, corpus):
...         per = [float(len(h.split())) for h in corpus.hyps_raw]
...         return Scores(corpus.each_subset(lambda m: sum(per[j] for j in m) / len(m)), per)
>>> corpus = Corpus(["a b", "c"], [["x"], ["y"]], {"total": [0, 1], "first": [0]})
>>> Length().score(corpus).corpus
{'total': 1.5, 'first': 2.0}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    from idcbench.bootstrap import Statistic

Progress = Callable[[str, int, int], None]
Tokenizer = Callable[[Sequence[str]], list[str]]


class MetricUnavailable(Exception):
    """The metric cannot be computed here (a missing jar, runtime or model); the reason is reported, never a 0."""


@dataclass
class Scores:
    """One metric's result on one evaluation: the corpus value of every non-empty subset (pycocoevalcap's 0-1 scale;
    CIDEr-D as is), the per-sample values within the ``total`` corpus (None: the metric has none), what it keeps per
    sample for resampling (``per_sample.jsonl``'s ``stats``), and how it was computed."""

    corpus: dict[str, float]
    per_sample: Sequence[float] | None = None
    stats: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def ptb_tokenize(captions: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTB tokenizer (the COCO protocol's tokens)."""
    from idcbench.metrics import ptb

    return ptb.tokenize(captions)


class Corpus:
    """The captions of one evaluation, in order: raw hypotheses and references, their tokens (one tokenizer pass
    for every metric that scores tokens, made on first use), the subsets as positions, and a cache of the work
    several metrics share (BLEU-1..4 share one pass of n-gram statistics)."""

    def __init__(self, hyps_raw: Sequence[str], refs_raw: Sequence[Sequence[str]], subsets: Mapping[str, list[int]],
                 *, ids: Sequence[str] | None = None, tokenize: Tokenizer = ptb_tokenize,
                 progress: Progress | None = None):
        self.hyps_raw, self.refs_raw = list(hyps_raw), [list(r) for r in refs_raw]
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(self.hyps_raw))]
        self.subsets = dict(subsets)
        self._tokenize = tokenize
        self.progress: Progress = progress or (lambda stage, done, total: None)
        self._shared: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.hyps_raw)

    @cached_property
    def tokens(self) -> tuple[list[str], list[list[str]]]:
        """(hypotheses, references) as the protocol's tokenizer gives them: one pass over every caption."""
        self.progress("tokenizing", 0, 1)
        flat = self._tokenize(self.hyps_raw + [c for rs in self.refs_raw for c in rs])
        n, k, refs = len(self.hyps_raw), len(self.hyps_raw), []
        for rs in self.refs_raw:
            refs.append(flat[k:k + len(rs)])
            k += len(rs)
        self.progress("tokenizing", 1, 1)
        return flat[:n], refs

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()` once per evaluation, whichever metric asks first."""
        if key not in self._shared:
            self._shared[key] = build()
        return self._shared[key]

    def each_subset(self, fn: Callable[[list[int]], float]) -> dict[str, float]:
        """`fn(positions)` of every non-empty subset."""
        return {s: float(fn(members)) for s, members in self.subsets.items() if members}

    def close(self) -> None:
        """Release what the metrics started (a METEOR process)."""
        for value in self._shared.values():
            close = getattr(value, "close", None)
            if callable(close):
                close()


class Metric:
    """A corpus-level caption metric. Subclasses set the class attributes and implement `score`; `statistic` (the
    bootstrap) defaults to the mean of the per-sample values when `mean_of_samples`, else none."""

    name: str = ""
    description: str = ""
    aliases: tuple[str, ...] = ()
    higher_is_better: bool = True
    default: bool = False  # in the default set (`idcbench.metrics.DEFAULT_METRICS`)
    column: bool = False  # a column of the leaderboard's main table
    order: float = 50.0  # position in metrics.json, tables and reports (COCO order: BLEU 1-4 ... SPICE)
    version: str = "pycocoevalcap 1.2"
    tokens: bool = True  # scored on the protocol's tokens (PTB for COCO); False: on the raw captions
    mean_of_samples: bool = False  # the corpus value is the mean of the per-sample values
    collect_last: bool = False  # score after the others (its `start` overlaps their work: METEOR's JVM)
    min_examples: int = 1  # fewer examples give a number that says nothing about the captions
    why_min_examples: str = ""  # why, in a sentence (the tables' footnote of the cells they leave out)
    requires: tuple[str, ...] = ()  # metrics whose corpus values this one is computed from
    keeps: tuple[str, ...] = ()  # the ``stats`` keys it writes per sample (`Scores.stats`): every row has them

    def start(self, corpus: Corpus) -> None:
        """Called for every metric of an evaluation before any is scored (start slow external work early)."""

    def score(self, corpus: Corpus, done: Mapping[str, Scores] | None = None) -> Scores:
        """Corpus values of every subset and per-sample values; `done` holds the results of `requires`."""
        raise NotImplementedError

    def statistic(self, rows: Sequence[Mapping[str, Any]]) -> "Statistic | None":
        """The vectorised bootstrap statistic (0-1 scale) of this metric over ``per_sample.jsonl`` rows, or None when
        the rows lack what it needs (then tables show no interval)."""
        if not self.mean_of_samples or not rows:
            return None
        from idcbench.bootstrap import MeanStatistic

        values = [(r.get("scores") or {}).get(self.name) for r in rows]
        return None if any(v is None for v in values) else MeanStatistic(values)

    def too_small(self, n: int | None) -> str | None:
        """Why `n` examples are too few for this metric (a sentence), or None."""
        if n is None or n >= self.min_examples:
            return None
        return f"{self.name} needs at least {self.min_examples} examples: {self.why_min_examples}"

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


def row_stats(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any] | None:
    """``stats[key]`` of every row, or None when a row lacks it."""
    values = [(r.get("stats") or {}).get(key) for r in rows]
    return None if any(v is None for v in values) else values


def row_tokens(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    """The tokenized hypotheses and references the rows were scored on, or None when a row lacks them."""
    hyps, refs = row_stats(rows, "hyp"), row_stats(rows, "refs")
    if hyps is None or refs is None or not all(isinstance(r, list) and r for r in refs):
        return None
    return [str(h) for h in hyps], [[str(x) for x in r] for r in refs]


def register(metric: Metric) -> Metric:
    """Add `metric` to `METRICS` under its name and aliases (looked up in any case, with or without ``-``/``_``)."""
    from idcbench.registry import METRICS

    return METRICS.add(metric.name, metric, description=metric.description, aliases=metric.aliases)


def get(name: str) -> Metric:
    """The metric `name` means (any spelling, ``BERTScore[<model>]`` included); unknown: a `UserError` with "did you
    mean".

    >>> get("cidr")
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: unknown metric 'cidr'; did you mean 'CIDEr-D'? (known: ...)
    """
    from idcbench.registry import METRICS

    return METRICS.get(name)
