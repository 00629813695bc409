"""Finding Java and pycocoevalcap's jars; one place for the JVM flags every scorer uses and for the Java versions
each scorer runs on (`idcbench list metrics`, `idcbench doctor`, the SPICE check and the README say the same).

>>> SCORER_JAVA.text, SCORER_JAVA.accepts(17)
('Java 8 or newer', True)
>>> SPICE_JAVA.text, SPICE_JAVA.accepts(11), SPICE_JAVA.accepts(17)
('Java 8-15', True, False)
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from idcbench.errors import UserError

# Locale flags: METEOR's Scanner.nextDouble fails under a decimal-comma locale.
LOCALE_FLAGS = ("-Duser.language=en", "-Duser.country=US")


@dataclass(frozen=True)
class JavaRange:
    """The Java major versions a scorer runs on: ``low`` to ``high`` (None: no upper bound)."""

    low: int
    high: int | None = None

    @property
    def text(self) -> str:
        return f"Java {self.low} or newer" if self.high is None else f"Java {self.low}-{self.high}"

    def accepts(self, major: int | None) -> bool:
        return major is not None and self.low <= major and (self.high is None or major <= self.high)


# The PTB tokenizer (CoreNLP 3.4.1) and METEOR 1.5 jars hold Java 6 and 5 bytecode; 8 is the oldest Java supported.
SCORER_JAVA = JavaRange(8)
# spice-1.0.jar is Java 8 bytecode; from Java 16 on (JEP 396) its serializer's reflective access to
# java.lang.String fails with InaccessibleObjectException.
SPICE_JAVA = JavaRange(8, 15)


@functools.lru_cache(maxsize=1)
def coco_dir() -> Path:
    """The installed pycocoevalcap package folder (a namespace package: no __file__)."""
    import pycocoevalcap

    return Path(list(pycocoevalcap.__path__)[0])


def ptb_jar() -> Path:
    return coco_dir() / "tokenizer" / "stanford-corenlp-3.4.1.jar"


def meteor_jar() -> Path:
    return coco_dir() / "meteor" / "meteor-1.5.jar"


def spice_jar() -> Path:
    return coco_dir() / "spice" / "spice-1.0.jar"


def java_executable() -> str:
    """The `java` on PATH, or a `UserError` saying how to install it."""
    java = shutil.which("java")
    if not java:
        raise UserError(
            f"Java not found: the PTB tokenizer and METEOR (pycocoevalcap) need {SCORER_JAVA.text}; "
            "install it (e.g. `sudo apt-get install -y default-jre-headless`) and rerun"
        )
    return java


def require_jar(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"{path} missing: reinstall pycocoevalcap (`pip install --force-reinstall pycocoevalcap==1.2`)")
    return path


@functools.lru_cache(maxsize=8)
def java_version_text(java: str) -> str | None:
    """The first line of ``java -version`` (the runtime and its version, e.g. ``openjdk version "17.0.9" ...``), or
    None when it cannot run or exits non-zero (a broken install prints an error, not a version)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else None


def java_major_version(java: str) -> int | None:
    """Major version of a Java runtime (8, 11, 17, ...), or None when it cannot run."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', java_version_text(java) or "")
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major

