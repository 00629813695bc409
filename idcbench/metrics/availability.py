"""What `idcbench doctor` says about the scorers: pycocoevalcap's jars, SPICE, BERTScore."""

from __future__ import annotations

from idcbench.doctor import Check
from idcbench.metrics import bertscore, spice
from idcbench.metrics._java import coco_dir, meteor_jar, ptb_jar


def checks() -> list[Check]:
    out = []
    try:
        jars = [ptb_jar(), meteor_jar(), meteor_jar().parent / "data" / "paraphrase-en.gz"]
        missing = [str(j) for j in jars if not j.is_file()]
        out.append(Check("pycocoevalcap jars", not missing,
                         f"PTB tokenizer and METEOR 1.5 in {coco_dir()}" if not missing
                         else f"missing {', '.join(missing)}: pip install --force-reinstall pycocoevalcap==1.2"))
    except ImportError:
        out.append(Check("pycocoevalcap jars", False, "pycocoevalcap not installed: pip install pycocoevalcap==1.2"))
    ok, why = spice.status()
    out.append(Check("SPICE", ok, why + ("" if ok else " (SPICE is then reported as not available)"), optional=True))
    ok, why = bertscore.available()
    out.append(Check("BERTScore", ok, f"default model {why}" if ok else why, optional=True))
    return out
