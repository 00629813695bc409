"""Models and datasets from outside idcbench: installed plugins (entry points) and ``--include PATH``.

An installed distribution adds models or datasets through the entry-point groups ``idcbench.models`` and
``idcbench.datasets`` (e.g. in its pyproject.toml: ``[project.entry-points."idcbench.models"] my-model =
"my_pkg.model:MyCaptioner"``). The entry point's name is the registered name; its object is a `Captioner` subclass or
a `ModelSpec` (models), or a loader with ``load(root)`` and ``info`` (datasets). The registry lists entry points
without importing them and loads one when its name is first looked up (`as_model` / `as_dataset` check what it is).

``--include PATH`` (on ``idcbench run``, ``caption``, ``score`` and ``list``) adds models without installing
anything: PATH is a ``.py`` file (imported; it registers with ``MODELS.add`` / ``register_variants`` /
``DATASETS.add``), a ``.json`` variant config, or a folder of both (its ``.py`` files first, then its ``.json``
files). A variant config is a shipped variant's format whose ``family`` is a registered model (the variant starts
from that model's config) or ``"module:Class"``:

>>> import json, tempfile
>>> from idcbench.registry import MODELS
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "nearest-neighbour-k5.json").write_text(json.dumps(
...     {"family": "nearest-neighbour-tiny", "description": "nearest-neighbour-tiny, 5 neighbours", "k": 5}))
>>> include([folder])
['nearest-neighbour-k5']
>>> MODELS.get("nearest-neighbour-k5").config["k"], MODELS.entry("nearest-neighbour-k5").source.startswith("--include ")
(5, True)
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.captioner import Captioner, ModelSpec, deep_merge
from idcbench.factory import variant_config
from idcbench.errors import UserError
from idcbench.files import read_json

INCLUDE_HELP = ("A .py file, a .json variant config or a folder of them that registers models (and datasets); "
                "repeatable. See README 'Add a model or a dataset'.")

_included: dict[Path, list[str]] = {}  # resolved file -> the model names it added (a file is included once per process)


def as_model(obj: Any) -> ModelSpec:
    """What a model entry point may name: a `ModelSpec`, or a `Captioner` subclass (registered with an empty config)."""
    if isinstance(obj, ModelSpec):
        return obj
    if isinstance(obj, type) and issubclass(obj, Captioner):
        return ModelSpec(obj, {}, (obj.__doc__ or obj.__name__).strip().split("\n")[0])
    raise UserError(f"expected a Captioner subclass or a ModelSpec, found {_what(obj)}")


def as_dataset(obj: Any) -> Any:
    """What a dataset entry point may name: a loader, i.e. an object with ``load(root) -> Dataset`` and ``info``."""
    from idcbench.data import DatasetInfo

    if callable(getattr(obj, "load", None)) and isinstance(getattr(obj, "info", None), DatasetInfo):
        return obj
    raise UserError(f"expected a dataset loader (with load(root) and a DatasetInfo `info`, e.g. a "
                    f"idcbench.datasets._common.Loader subclass), found {_what(obj)}")


def _what(obj: Any) -> str:
    return f"class {obj.__qualname__}" if isinstance(obj, type) else type(obj).__name__


def include(paths: Sequence[str | Path]) -> list[str]:
    """Register the models (and datasets) of each ``--include`` path; returns the model names its files added. A file
    already included in this process is skipped (a folder and a file in it, or a command repeated in one process)."""
    from idcbench.registry import DATASETS, MODELS

    if not paths:
        return []
    MODELS.load()  # built-ins and installed plugins first: an included name that clashes is the include's error
    DATASETS.load()
    added: list[str] = []
    for path in paths:
        for file in _files(Path(path).expanduser()):
            key = file.resolve()
            if key not in _included:
                before = set(MODELS.names())
                (_import if file.suffix == ".py" else _add_variant)(file)
                _included[key] = sorted(set(MODELS.names()) - before)
            added += _included[key]
    return sorted(added)


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"--include {path}: not found; give a .py file, a .json variant config or a folder of them")
    if path.is_file():
        if path.suffix not in (".py", ".json"):
            raise UserError(f"--include {path}: not a .py or .json file")
        return [path]
    files = sorted(path.glob("*.py")) + sorted(path.glob("*.json"))
    if not files:
        raise UserError(f"--include {path}: the folder has no .py or .json file")
    return files


def _import(file: Path) -> None:
    """Execute `file` as a module of its own (named after its path, so two files called ``models.py`` both load)."""
    name = "idcbench_include_" + re.sub(r"\W", "_", str(file.resolve().with_suffix("")))
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except UserError as e:
        del sys.modules[name]
        raise UserError(f"--include {file}: {e}") from None
    except SyntaxError as e:
        del sys.modules[name]
        raise UserError(f"--include {file}:{e.lineno}: syntax error ({e.msg})") from None
    except Exception as e:  # the user's code: say where it failed in their file, in one line
        del sys.modules[name]
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == file]
        where = f"{file}:{lines[-1]}" if lines else str(file)
        detail = " ".join(str(e).split())
        raise UserError(f"--include {where}: {type(e).__name__}{f': {detail}' if detail else ''}") from None


def _add_variant(file: Path) -> None:
    """Register one JSON variant config (the shipped variants' format; `family` a model name or module:Class)."""
    from idcbench.registry import MODELS

    try:
        data = read_json(file, what="variant config")
    except UserError as e:  # its message starts with the file's name
        raise UserError(f"--include {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"--include {file}: expected a JSON object (family, description, config), "
                        f"found {type(data).__name__}")
    family, description = data.get("family"), data.get("description")
    if not isinstance(family, str) or not family:
        raise UserError(f"--include {file}: no \"family\": name a registered model (`idcbench list models`) whose "
                        "config the variant starts from, or a captioner class as \"module:Class\"")
    if not isinstance(description, str) or not description.strip():
        raise UserError(f"--include {file}: no \"description\" (`idcbench list models` shows it)")
    config = variant_config(data)
    if not isinstance(config, Mapping):
        raise UserError(f"--include {file}: \"config\" must be a JSON object")
    spec = ModelSpec(_family(family, file), deep_merge(MODELS.get(family).config, config) if family in MODELS
                     else dict(config), description)
    name, aliases = data.get("name", file.stem), data.get("aliases", [])
    if not isinstance(name, str) or not name or not isinstance(aliases, list):
        raise UserError(f"--include {file}: \"name\" must be a non-empty string and \"aliases\" a list of strings")
    try:
        MODELS.add(name, spec, description=description, aliases=tuple(aliases), source=f"--include {file}")
    except ValueError as e:
        raise UserError(f"--include {file}: {e}; choose another \"name\"") from None


def _family(family: str, file: Path) -> type[Captioner] | str:
    """A registered model's family, or a "module:Class" imported now (a typo fails here, not mid-run)."""
    import pkgutil

    from idcbench.registry import MODELS

    if family in MODELS:
        return MODELS.get(family).family_ref
    if ":" not in family:
        try:
            MODELS.get(family)  # unknown model: "did you mean"
        except UserError as e:
            raise UserError(f"--include {file}: family: {e}") from None
    try:
        cls = pkgutil.resolve_name(family)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"--include {file}: family {family!r} cannot be imported ({type(e).__name__}: {e})") from None
    if not (isinstance(cls, type) and issubclass(cls, Captioner)):
        raise UserError(f"--include {file}: family {family!r} is not a Captioner subclass")
    return family
