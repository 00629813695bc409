"""Progress callbacks of a run (the lowest layer of `idcbench.run`: every stage reports through it)."""

from __future__ import annotations

from typing import Mapping


class Reporter:
    """Progress callbacks of a run; this base class ignores them. The CLI passes a rich one on rank 0 only.

    >>> Reporter().advance("caption", 4)
    """

    def message(self, text: str) -> None: ...

    def train(self, stage: str, step: int, total: int, logs: Mapping[str, float]) -> None: ...

    def begin(self, task: str, total: int, completed: int = 0) -> None: ...

    def advance(self, task: str, n: int = 1) -> None: ...

    def update(self, task: str, completed: int, total: int, info: str = "") -> None: ...

    def end(self, task: str) -> None: ...
