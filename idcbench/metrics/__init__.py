"""Caption metrics (COCO metrics, SPICE, BERTScore). Importing registers them in `METRICS`.

Each entry is a `MetricSpec`; `idcbench.scoring.score` computes them together (one tokenization, one METEOR
process). Values are on pycocoevalcap's 0-1 scale (CIDEr-D as is); reports show them x100.

>>> from idcbench.registry import METRICS
>>> METRICS.get("CIDEr").name
'CIDEr-D'
"""

from __future__ import annotations

from dataclasses import dataclass

from idcbench.registry import METRICS


@dataclass(frozen=True)
class MetricSpec:
    """A corpus-level caption metric. `kind` says how it is computed and how a resample is rescored."""

    name: str
    kind: str  # "bleu", "meteor", "rouge", "cider", "spice", "bertscore"
    higher_is_better: bool = True
    default: bool = True
    version: str = "pycocoevalcap 1.2"


for _n in range(1, 5):
    METRICS.add(f"BLEU-{_n}", MetricSpec(f"BLEU-{_n}", "bleu"), aliases=(f"Bleu_{_n}", f"BLEU{_n}", f"B{_n}"),
                description=f"BLEU-{_n}, corpus level, closest reference length (pycocoevalcap 1.2, PTB tokens)")
METRICS.add("METEOR", MetricSpec("METEOR", "meteor", version="meteor-1.5 (pycocoevalcap 1.2), -l en -norm"),
            description="METEOR 1.5 aggregate from summed statistics (pycocoevalcap's jar, one process)")
METRICS.add("ROUGE-L", MetricSpec("ROUGE-L", "rouge"), aliases=("ROUGE_L", "ROUGE"),
            description="ROUGE-L, beta 1.2, mean over images (pycocoevalcap 1.2)")
METRICS.add("CIDEr-D", MetricSpec("CIDEr-D", "cider"), aliases=("CIDEr", "CIDER"),
            description="CIDEr-D (pycocoevalcap's CIDEr), document frequencies from the scored corpus")
METRICS.add("SPICE", MetricSpec("SPICE", "spice", default=False, version="spice-1.0 (pycocoevalcap 1.2)"),
            description="SPICE; needs CoreNLP 3.6.0 jars in $IDCBENCH_SPICE_LIB and Java 8-15 (opt-in)")
METRICS.add("BERTScore", MetricSpec("BERTScore", "bertscore", default=False, version="bert-score"),
            description="BERTScore F1, default all-MiniLM-L6-v2 offline; BERTScore[<model>] for another (opt-in)")
