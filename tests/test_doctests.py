"""The examples in the docstrings of every idcbench module run: `idcbench/`, and `models/` and `datasets/`, which
are installed as `idcbench.models` / `idcbench.datasets` (so pytest's `--doctest-modules` cannot import them by
path). One mechanism, so plain `pytest` runs them all."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import idcbench
import idcbench.datasets
import idcbench.models


def _modules_with_examples() -> list[str]:
    names = set()
    for pkg in (idcbench, idcbench.models, idcbench.datasets):
        for name in [pkg.__name__, *(m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."))]:
            if name.endswith("__main__"):  # importing it runs the CLI
                continue
            tests = doctest.DocTestFinder().find(importlib.import_module(name))
            if any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples):
                names.add(name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} failed in {name}"
