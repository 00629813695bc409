"""One generic, typed registry for datasets, models and metrics.

Entries are registered by name with a decorator (or a call) and looked up by name; an unknown name raises a
`UserError` that lists the closest names ("did you mean ..."). Patterns (`fnmatch`) filter listings.

>>> colours: Registry[str] = Registry("colour")
>>> colours.add("red", "ff0000", description="the colour of stop signs")
'ff0000'
>>> colours.get("red")
'ff0000'
>>> colours.get("rde")
Traceback (most recent call last):
...
idcbench.errors.UserError: unknown colour 'rde'; did you mean 'red'? (known: red)
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from idcbench.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str = ""


class Registry(Generic[T]):
    """A name -> object mapping with helpful errors. `kind` names the objects in messages ("dataset", "model")."""

    def __init__(self, kind: str, *, plugins: tuple[str, ...] = ()):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._plugins = plugins
        self._loaded = not plugins

    def _load_plugins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._plugins:
                importlib.import_module(module)

    def add(self, name: str, obj: T, *, description: str = "", aliases: tuple[str, ...] = ()) -> T:
        """Register `obj` under `name` (and `aliases`); a name can be registered once."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[name] = Entry(name, obj, description)
        for alias in aliases:
            self._aliases[alias] = name
        return obj

    def register(self, name: str, *, description: str = "", aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of `add`; the description defaults to the first docstring line."""

        def decorator(obj: T) -> T:
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            return self.add(name, obj, description=doc, aliases=aliases)

        return decorator

    def entry(self, name: str) -> Entry[T]:
        self._load_plugins()
        key = self._aliases.get(name, name)
        if key in self._entries:
            return self._entries[key]
        known = sorted(self._entries)
        close = difflib.get_close_matches(name, known + sorted(self._aliases), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(self._aliases.get(c, c)) for c in close)}?" if close else ""
        raise UserError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known)})")

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries or name in self._aliases

    def names(self, pattern: str = "*") -> list[str]:
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self, pattern: str = "*") -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(pattern)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# The three registries of the project. Plugins are imported on first use, so `import idcbench` stays light.
DATASETS: Registry = Registry("dataset", plugins=("idcbench.datasets",))
MODELS: Registry = Registry("model", plugins=("idcbench.models",))
METRICS: Registry = Registry("metric", plugins=("idcbench.metrics",))
