"""Helpers shared by the dataset loaders: root and file checks, annotation validation, the loader base class.

Every problem a user can cause becomes one `UserError` line that names the file, what was expected and how to fix it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from idcbench.data import Dataset, DatasetInfo, Example
from idcbench.errors import UserError
from idcbench.files import read_json


class Loader(Dataset):
    """A `Dataset` that is also its own registered loader: ``DATASETS.get(name).load(root)``.

    Subclasses set `info` and `expected` (a one-line summary of the layout for error messages), implement
    `_check_root` (cheap existence checks) and the `Dataset` methods. Examples are built lazily per split and cached.
    """

    info: DatasetInfo
    expected: str = ""

    def __init__(self, root: Path):
        super().__init__(root)
        self._cache: dict[str, list[Example]] = {}

    @classmethod
    def load(cls, root: str | Path) -> "Loader":
        """Open the dataset at `root`: checks that the root and its annotation files exist; parses nothing yet."""
        root = Path(root).expanduser()
        require_root(cls.info, cls.expected, root)
        dataset = cls(root)
        dataset._check_root()
        return dataset

    @classmethod
    def open(cls, root: str | Path) -> "Loader":
        """Like `load`, without side effects (`shapes` overrides it so that `data info` never generates data)."""
        return cls.load(root)

    def _check_root(self) -> None:
        """Raise a `UserError` when a required annotation file is missing."""

    def _build(self, split: str) -> list[Example]:
        raise NotImplementedError

    def examples(self, split: str) -> list[Example]:
        self.check_split(split)
        if split not in self._cache:
            with gc_paused():
                self._cache[split] = self._build(split)
        return self._cache[split]

    def missing(self, path: Path, what: str) -> UserError:
        return missing_file(self.info, self.expected, path, what)


def require_root(info: DatasetInfo, expected: str, root: Path) -> None:
    if not root.exists():
        raise UserError(
            f"{info.name}: data root {root} not found; put the dataset there or pass --data-root DIR "
            f"(expected {expected}; `idcbench data info {info.name}` shows the layout and where to get it)"
        )
    if not root.is_dir():
        raise UserError(f"{info.name}: data root {root} is not a directory (expected {expected})")


def missing_file(info: DatasetInfo, expected: str, path: Path, what: str) -> UserError:
    return UserError(
        f"{info.name}: {what} not found: {path} (expected {expected}; see `idcbench data info {info.name}`)"
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building ~80k examples otherwise triggers repeated full collections over
    the parsed annotations (more than half of CLEVR-Change's load time). Nothing built here forms cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_annotations(path: Path, what: str) -> Any:
    with gc_paused():
        return read_json(path, what=what)


def expect_list(value: Any, where: str, what: str) -> list:
    if not isinstance(value, list):
        raise UserError(f"{where}: expected {what} (a JSON list), found {type(value).__name__}")
    return value


def expect_dict(value: Any, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected {what} (a JSON object), found {type(value).__name__}")
    return value


def expect_strings(value: Any, where: str) -> list[str]:
    """A list of strings (captions); anything else is a one-line error naming `where`."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise UserError(f"{where}: expected a list of caption strings, found {_short(value)}")
    return value


def parse_int_id(value: Any, where: str, what: str = "id") -> int:
    """An integer id given as a JSON int or a string of digits ("0042" -> 42)."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and value >= 0:
        return value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise UserError(f"{where}: {what} {_short(value)} is not a non-negative integer")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unique_images(examples: Iterable[Example]) -> dict[Path, str]:
    """Every image path the examples reference, with the id of the first example that uses it."""
    seen: dict[Path, str] = {}
    for e in examples:
        seen.setdefault(e.before, e.id)
        seen.setdefault(e.after, e.id)
    return seen
