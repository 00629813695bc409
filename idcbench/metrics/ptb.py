"""PTB tokenization exactly as pycocoevalcap 1.2 does it, without its line-break trap.

pycocoevalcap runs Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` on one caption per line and
drops punctuation tokens. The jar also breaks lines at ``\\r``, ``\\x0b``, ``\\x0c``, ``\\x85``, U+2028 and U+2029, while
pycocoevalcap only replaces ``\\n``: one such character shifts every later caption onto the wrong image. Here all
of them become spaces and the number of output lines is checked.

>>> tokenize(["A man (riding) a Horse.", "It isn't there!"])  # doctest: +SKIP
['a man -lrb- riding -rrb- a horse', 'it is n\\'t there']
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import Sequence

from idcbench.errors import UserError
from idcbench.metrics._java import java_executable, ptb_jar, require_jar

# Tokens dropped after tokenization (pycocoevalcap's list; `-lrb-` etc. survive because of -lowerCase).
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])
LINE_BREAKS = "\n\r\x0b\x0c\x85\u2028\u2029"
_SANITIZE = str.maketrans({c: " " for c in LINE_BREAKS})


def sanitize(caption: str) -> str:
    """Replace every character the tokenizer treats as a line break with a space."""
    return caption.translate(_SANITIZE)


def clean_line(line: str) -> str:
    """pycocoevalcap's post-processing of one tokenizer output line."""
    return " ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)


def tokenize(captions: Sequence[str], *, timeout: float = 600) -> list[str]:
    """Tokenize `captions` in one JVM; returns one tokenized string per caption, in order."""
    if not captions:
        return []
    java = java_executable()
    jar = require_jar(ptb_jar())
    with tempfile.TemporaryDirectory(prefix="idcbench-ptb-") as tmp:
        path = os.path.join(tmp, "captions.txt")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(sanitize(c) for c in captions))
            f.write("\n")
        cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", path]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise UserError(f"PTB tokenizer (Java) did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise UserError(f"PTB tokenizer (Java) failed with exit code {proc.returncode}: {' | '.join(tail)}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) != len(captions) + 1 or lines[-1] != "":
        raise UserError(
            f"PTB tokenizer returned {len(lines) - 1} lines for {len(captions)} captions; "
            "a caption contains a character the tokenizer treats as a line break (please report it)"
        )
    return [clean_line(line) for line in lines[:-1]]
