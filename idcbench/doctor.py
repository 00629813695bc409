"""Environment checks behind `idcbench doctor`: each says ok / missing and what to do."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    optional: bool = False


def java_check() -> Check:
    from idcbench.metrics._java import SCORER_JAVA, SPICE_JAVA, java_major_version, java_version_text

    needs = f"METEOR and the PTB tokenizer need {SCORER_JAVA.text} (SPICE: {SPICE_JAVA.text})"
    java = shutil.which("java")
    if not java:
        return Check("java", False, f"{needs}: sudo apt-get install -y default-jre-headless")
    text = java_version_text(java)
    if text is None:
        return Check("java", False, f"{java} does not run (`java -version` failed): reinstall it, e.g. "
                     "sudo apt-get install -y default-jre-headless")
    if not SCORER_JAVA.accepts(java_major_version(java)):
        return Check("java", False, f"{java}: {text}; {needs}: install a newer one, e.g. "
                     "sudo apt-get install -y default-jre-headless")
    return Check("java", True, f"{java}: {text}; {needs}")


def torch_check() -> Check:
    import torch

    device = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only (no CUDA device)"
    return Check("torch", True, f"torch {torch.__version__}, {device}")


def jars_check() -> Check:
    from idcbench.metrics._java import coco_dir, meteor_jar, ptb_jar

    try:
        jars = [ptb_jar(), meteor_jar(), meteor_jar().parent / "data" / "paraphrase-en.gz"]
    except ImportError:
        return Check("pycocoevalcap jars", False, "pycocoevalcap not installed: pip install pycocoevalcap==1.2")
    missing = [str(j) for j in jars if not j.is_file()]
    return Check("pycocoevalcap jars", not missing,
                 f"PTB tokenizer and METEOR 1.5 in {coco_dir()}" if not missing
                 else f"missing {', '.join(missing)}: pip install --force-reinstall pycocoevalcap==1.2")


def spice_check() -> Check:
    from idcbench.metrics import spice

    ok, why = spice.status()
    return Check("SPICE", ok, why + ("" if ok else " (SPICE is then reported as not available)"), optional=True)


def bertscore_check() -> Check:
    from idcbench.metrics import bertscore

    ok, why = bertscore.available()
    return Check("BERTScore", ok, f"default model {why}" if ok else why, optional=True)


Step = tuple[str, Callable[[], Check]]  # (what is checked, the check)


def steps() -> list[Step]:
    """Every check, in the order `idcbench doctor` prints them (some take seconds: torch, BERTScore's model)."""
    return [("java", java_check), ("torch", torch_check), ("pycocoevalcap jars", jars_check), ("SPICE", spice_check),
            ("BERTScore", bertscore_check)]


def checks(on_step: Callable[[str, int, int], None] | None = None) -> list[Check]:
    """Run every check; `on_step(name, done, total)` is told before each starts (the CLI shows it)."""
    todo = steps()
    out = []
    for done, (name, check) in enumerate(todo):
        if on_step is not None:
            on_step(name, done, len(todo))
        out.append(check())
    return out
