"""The examples in the docstrings of `models/` and `datasets/` run (those of `idcbench/` run through
`--doctest-modules` in `make test`; these two folders are installed as `idcbench.models` / `idcbench.datasets`,
so pytest cannot import them by path)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import idcbench.datasets
import idcbench.models


def _modules_with_examples() -> list[str]:
    names = []
    for pkg in (idcbench.models, idcbench.datasets):
        for name in [pkg.__name__, *(m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."))]:
            tests = doctest.DocTestFinder().find(importlib.import_module(name))
            if any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples):
                names.append(name)
    return sorted(names)


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} failed in {name}"
