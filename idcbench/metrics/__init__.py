"""Caption metrics (COCO metrics, SPICE, BERTScore). Importing registers them in `METRICS`.

Each entry is a `MetricSpec`; `idcbench.scoring.score` computes them together (one tokenization, one METEOR
process). Values are on pycocoevalcap's 0-1 scale (CIDEr-D as is); reports show them x100.

>>> from idcbench.registry import METRICS
>>> METRICS.get("CIDEr").name
'CIDEr-D'
>>> [canonical_name(n) for n in ("cider", "Rouge", "bleu_4", "meteor", "spice", "CIDER-D", "nosuch")]
['CIDEr-D', 'ROUGE-L', 'BLEU-4', 'METEOR', 'SPICE', 'CIDEr-D', None]
>>> too_small("CIDEr-D", 1) is not None, too_small("CIDEr-D", 2), too_small("BLEU-4", 1)
(True, None, None)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from idcbench.errors import UserError
from idcbench.metrics._java import SCORER_JAVA, SPICE_JAVA
from idcbench.registry import METRICS


@dataclass(frozen=True)
class MetricSpec:
    """A corpus-level caption metric. `kind` says how it is computed and how a resample is rescored."""

    name: str
    kind: str  # "bleu", "meteor", "rouge", "cider", "spice", "bertscore"
    higher_is_better: bool = True
    default: bool = True
    version: str = "pycocoevalcap 1.2"
    min_examples: int = 1  # a corpus of fewer examples gives a number that says nothing about the captions
    why_min_examples: str = ""  # why, in a sentence (tables print it as the footnote of the cells they leave out)


_SPELLINGS: dict[str, str] = {}  # folded spelling -> registered name


def _fold(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ ")


def canonical_name(name: str) -> str | None:
    """The registered metric that `name` means in any case, with or without ``-`` / ``_`` (``cider``, ``Bleu_4``,
    ``rouge``); None when there is none. Group names (``bleu`` = BLEU-1..4) are `idcbench.scoring.resolve_metrics`'."""
    return _SPELLINGS.get(_fold(name))


def metric_name(name: str) -> str:
    """`canonical_name`, or a `UserError` with the closest names ("did you mean").

    >>> metric_name("cidr")
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: unknown metric 'cidr'; did you mean 'CIDEr-D'? (known: ...)
    """
    found = canonical_name(name)
    if found is not None:
        return found
    close = difflib.get_close_matches(_fold(name), list(_SPELLINGS), n=3, cutoff=0.6)
    hint = " or ".join(repr(m) for m in dict.fromkeys(_SPELLINGS[c] for c in close))
    known = ", ".join(dict.fromkeys(_SPELLINGS.values()))
    raise UserError(f"unknown metric {name!r}{f'; did you mean {hint}?' if hint else ''} (known: {known}; "
                    "bleu = BLEU-1..4, any case)")


def too_small(metric: str, n: int | None) -> str | None:
    """Why `n` examples are too few to score `metric` on (one sentence), or None when they are enough (or `metric` or
    `n` is unknown). Tables show such a score as a mark with this footnote, never as the number.

    >>> print(too_small("cider", 1))
    CIDEr-D needs at least 2 examples: its n-gram weights are idf = log(N / df) over the N examples scored \
together, so with N = 1 every n-gram has df = N, every weight is 0 and any caption scores 0
    """
    name = canonical_name(metric.split("[")[0])
    if name is None or n is None:
        return None
    spec = METRICS.get(name)
    if n >= spec.min_examples:
        return None
    return f"{spec.name} needs at least {spec.min_examples} examples: {spec.why_min_examples}"


def _add(spec: MetricSpec, aliases: tuple[str, ...] = (), *, description: str) -> None:
    METRICS.add(spec.name, spec, aliases=aliases, description=description)
    for spelling in (spec.name, *aliases):
        _SPELLINGS[_fold(spelling)] = spec.name


for _n in range(1, 5):
    _add(MetricSpec(f"BLEU-{_n}", "bleu"), (f"Bleu_{_n}", f"BLEU{_n}", f"B{_n}"),
         description=f"BLEU-{_n}, corpus level, closest reference length (pycocoevalcap 1.2, PTB tokens)")
_add(MetricSpec("METEOR", "meteor", version="meteor-1.5 (pycocoevalcap 1.2), -l en -norm"),
     description=f"METEOR 1.5 aggregate from summed statistics (pycocoevalcap's jar, one process; {SCORER_JAVA.text})")
_add(MetricSpec("ROUGE-L", "rouge"), ("ROUGE_L", "ROUGE"),
     description="ROUGE-L, beta 1.2, mean over images (pycocoevalcap 1.2)")
_add(MetricSpec("CIDEr-D", "cider", min_examples=2,
                 why_min_examples="its n-gram weights are idf = log(N / df) over the N examples scored together, "
                 "so with N = 1 every n-gram has df = N, every weight is 0 and any caption scores 0"),
     ("CIDEr", "CIDER"),
     description="CIDEr-D (pycocoevalcap's CIDEr), document frequencies from the scored corpus")
_add(MetricSpec("SPICE", "spice", default=False, version="spice-1.0 (pycocoevalcap 1.2)"),
     description=f"SPICE; needs CoreNLP 3.6.0 jars in $IDCBENCH_SPICE_LIB and {SPICE_JAVA.text} (opt-in)")
_add(MetricSpec("BERTScore", "bertscore", default=False, version="bert-score"),
     description="BERTScore F1, default all-MiniLM-L6-v2 offline; BERTScore[<model>] for another (opt-in)")
