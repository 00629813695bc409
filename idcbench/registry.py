"""One generic, typed registry for datasets, models and metrics.

Entries are registered by name with a decorator (or a call) and looked up by name; an unknown name raises a
`UserError` that lists the closest names ("did you mean ..."). Patterns (`fnmatch`) filter listings.

The project's registries fill themselves on first use: the built-in packages are imported, then the entry points of
installed plugins (groups ``idcbench.models`` and ``idcbench.datasets``) are listed without importing them; a plugin's
code is imported when its name is first looked up, and a plugin that fails to load is one `UserError` line naming its
distribution and entry point. A scheme (``pairs``) registers a family of names ``pairs:ARGUMENT`` built on lookup.

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
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from idcbench.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its name and a one-line description."""

    name: str
    obj: T
    description: str = ""
    source: str = ""  # where a plugin entry comes from ("plugin DIST: entry point ..."); empty for built-ins


class Registry(Generic[T]):
    """A name -> object mapping with helpful errors. `kind` names the objects in messages ("dataset", "model")."""

    def __init__(self, kind: str, *, plugins: tuple[str, ...] = (), group: str | None = None,
                 adapt: str | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._pending: dict[str, Any] = {}  # name -> importlib.metadata.EntryPoint, loaded on first lookup
        self._schemes: dict[str, Callable[[str], T]] = {}
        self._scheme_rows: dict[str, str] = {}  # scheme -> its listing row ("pairs:PATH")
        self._plugins = plugins
        self._group = group  # entry-point group of installed plugins
        self._adapt = adapt  # "module:function" turning a loaded entry point into a T (or raising TypeError)
        self._loaded = not plugins and group is None
        self.fold: Callable[[str], str] | None = None  # how names compare (e.g. any case), when not exactly
        self._folded: dict[str, str] = {}  # fold(name or alias) -> name
        self._brackets: set[str] = set()  # schemes written SCHEME[ARGUMENT] rather than SCHEME:ARGUMENT

    def load(self) -> None:
        """Register the built-ins and list the installed plugins now (before an included file adds names)."""
        self._load_plugins()

    def _load_plugins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._plugins:
                importlib.import_module(module)
            if self._group is not None:
                self._discover(self._group)

    def _discover(self, group: str) -> None:
        """Register the entry points of `group` by name; nothing is imported until a name is looked up."""
        from importlib.metadata import entry_points

        for ep in entry_points(group=group):
            where = _plugin_source(ep, group)
            if ep.name in self._entries or ep.name in self._aliases:
                owner = self._entries[ep.name].source if ep.name in self._entries else ""
                raise UserError(f"{where}: {self.kind} {ep.name!r} is already registered ({owner or 'by idcbench'}); "
                                "rename the entry point or uninstall one of the two")
            self._entries[ep.name] = Entry(ep.name, None, f"plugin {_dist_name(ep)} ({ep.value})", where)  # type: ignore[arg-type]
            self._pending[ep.name] = ep

    def _resolve(self, name: str) -> Entry[T]:
        """Import a pending plugin entry; any failure is one line naming the distribution and the entry point."""
        ep, where = self._pending[name], self._entries[name].source
        try:
            obj = ep.load()
            if self._adapt is not None:
                obj = pkgutil.resolve_name(self._adapt)(obj)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        except Exception as e:  # a plugin's import can fail in any way: the user needs one line, not our stack
            detail = " ".join(str(e).split()) or type(e).__name__
            raise UserError(f"{where}: cannot load it ({type(e).__name__}: {detail}); fix or uninstall "
                            f"{_dist_name(ep)}") from None
        description = getattr(obj, "description", None)
        if not isinstance(description, str) or not description:
            doc = (obj.__doc__ or "").strip() if isinstance(obj, type) else ""
            description = doc.split("\n")[0] if doc else self._entries[name].description
        del self._pending[name]
        self._entries[name] = Entry(name, obj, description, where)
        return self._entries[name]

    def add(self, name: str, obj: T, *, description: str = "", aliases: tuple[str, ...] = (), source: str = "") -> T:
        """Register `obj` under `name` (and `aliases`); a name can be registered once."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[name] = Entry(name, obj, description, source)
        for alias in aliases:
            self._aliases[alias] = name
        if self.fold is not None:
            for key in (name, *aliases):
                self._folded.setdefault(self.fold(key), name)
        return obj

    def add_scheme(self, scheme: str, build: Callable[[str], T], *, description: str, argument: str = "ARG",
                   brackets: bool = False) -> None:
        """Register the names ``SCHEME:ARGUMENT`` (``SCHEME[ARGUMENT]`` with `brackets`): looking one up returns
        ``build(ARGUMENT)``. Listings show one row, e.g. datasets ``pairs:PATH``, metrics ``BERTScore[MODEL]``."""
        self._schemes[scheme] = build
        row = f"{scheme}[{argument}]" if brackets else f"{scheme}:{argument}"
        if brackets:
            self._brackets.add(scheme)
        self.add(row, build, description=description)  # type: ignore[arg-type]
        self._scheme_rows[scheme] = row

    def _split_scheme(self, name: str) -> tuple[str, str] | None:
        scheme, sep, argument = name.partition(":")
        if sep and scheme in self._schemes and scheme not in self._brackets:
            return scheme, argument
        scheme, sep, argument = name.partition("[")
        if sep and argument.endswith("]"):
            for known in self._brackets:
                if scheme == known or (self.fold is not None and self.fold(scheme) == self.fold(known)):
                    return known, argument[:-1]
        return None

    def scheme_of(self, name: str) -> str | None:
        """The scheme of a ``SCHEME:ARGUMENT`` name (None for plain names).

        >>> r: Registry[str] = Registry("thing"); r.add_scheme("file", str.upper, description="a file")
        >>> r.scheme_of("file:a.txt"), r.scheme_of("a.txt"), r.get("file:a.txt")
        ('file', None, 'A.TXT')
        """
        self._load_plugins()
        found = self._split_scheme(name)
        return None if found is None else found[0]

    def register(self, name: str, *, description: str = "", aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of `add`; the description defaults to the first docstring line."""

        def decorator(obj: T) -> T:
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            return self.add(name, obj, description=doc, aliases=aliases)

        return decorator

    def entry(self, name: str) -> Entry[T]:
        self._load_plugins()
        found = self._split_scheme(name)
        if found is not None:
            scheme, argument = found
            template = self._entries[self._scheme_rows[scheme]]
            return Entry(name, self._schemes[scheme](argument), template.description)
        key = self._key(name)
        if key in self._pending:
            return self._resolve(key)
        if key in self._entries:
            return self._entries[key]
        known = sorted(self._entries)
        spellings = known + sorted(self._aliases)
        fold = self.fold or (lambda n: n)
        by_fold = {fold(n): self._aliases.get(n, n) for n in reversed(spellings)}
        close = difflib.get_close_matches(fold(name), list(by_fold), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(n) for n in dict.fromkeys(by_fold[c] for c in close))}?" if close else ""
        raise UserError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known)})")

    def _key(self, name: str) -> str:
        """The registered name that `name` (a name or an alias, folded when the registry folds) stands for."""
        key = self._aliases.get(name, name)
        if key not in self._entries and self.fold is not None:
            key = self._folded.get(self.fold(name), key)
        return key

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return self._key(name) in self._entries or self.scheme_of(name) is not None

    def names(self, pattern: str = "*") -> list[str]:
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self, pattern: str = "*") -> list[Entry[T]]:
        """Entries for listings: a plugin not looked up yet is not imported (its `obj` is None)."""
        return [self._entries[n] for n in self.names(pattern)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _plugin_source(ep: Any, group: str) -> str:
    return f"plugin {_dist_name(ep)}: entry point {ep.name} = {ep.value} (group {group})"


# The three registries of the project. Plugins are imported on first use, so `import idcbench` stays light.
DATASETS: Registry = Registry("dataset", plugins=("idcbench.datasets",), group="idcbench.datasets",
                              adapt="idcbench.plugins:as_dataset")
MODELS: Registry = Registry("model", plugins=("idcbench.models",), group="idcbench.models",
                            adapt="idcbench.plugins:as_model")
METRICS: Registry = Registry("metric", plugins=("idcbench.metrics",))
