"""What `idcbench doctor` says about the scorers: pycocoevalcap's jars, SPICE, BERTScore."""

from __future__ import annotations

from typing import Callable

from idcbench.doctor import Check
from idcbench.metrics import bertscore, spice
from idcbench.metrics._java import coco_dir, meteor_jar, ptb_jar


def jars_check() -> Check:
    try:
        jars = [ptb_jar(), meteor_jar(), meteor_jar().parent / "data" / "paraphrase-en.gz"]
    except ImportError:
        return Check("pycocoevalcap jars", False, "pycocoevalcap not installed: pip install pycocoevalcap==1.2")
    missing = [str(j) for j in jars if not j.is_file()]
    return Check("pycocoevalcap jars", not missing,
                 f"PTB tokenizer and METEOR 1.5 in {coco_dir()}" if not missing
                 else f"missing {', '.join(missing)}: pip install --force-reinstall pycocoevalcap==1.2")


def spice_check() -> Check:
    ok, why = spice.status()
    return Check("SPICE", ok, why + ("" if ok else " (SPICE is then reported as not available)"), optional=True)


def bertscore_check() -> Check:
    ok, why = bertscore.available()
    return Check("BERTScore", ok, f"default model {why}" if ok else why, optional=True)


def steps() -> list[tuple[str, Callable[[], Check]]]:
    """The scorer checks as `idcbench.doctor.steps` lists them: (name, check)."""
    return [("pycocoevalcap jars", jars_check), ("SPICE", spice_check), ("BERTScore", bertscore_check)]


def checks() -> list[Check]:
    return [check() for _, check in steps()]
