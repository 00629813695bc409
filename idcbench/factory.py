"""The one way to read a variant, merge its defaults, build a model, load a checkpoint, save it and read it back.

A *family* is one `Captioner` class, named by its `name` (``clip4idc``, ``duda``, ``vlm``, ...); a *variant* is a
registered name with a family and a config (the JSON files in ``models/*/configs/``, an ``--include`` file, a plugin's
entry point). Everything that makes a model goes through here: `idcbench run` (train, ``--init``, or build), `idcbench
caption`, `create_model` for Python users, and the plugins.

>>> model = create_model("most-frequent")
>>> family_name(type(model)), resolve("clip4idc-tiny", {"stage2": {"epochs": 2}})[1]["stage2"]["epochs"]
('most-frequent', 2)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from idcbench.captioner import Captioner, ModelSpec, check_config, deep_merge
from idcbench.errors import UserError
from idcbench.files import read_json, write_json_atomic

MARKER = "idcbench-model.json"  # written into a saved model's folder last: its presence means the folder is complete
VARIANT_KEYS = ("name", "description", "family", "aliases", "config")  # a variant file's keys that are not config
_LOAD_ERRORS = (RuntimeError, KeyError, ValueError, TypeError, OSError, EOFError, json.JSONDecodeError)


def family_name(family: type[Captioner]) -> str:
    """A family's name: its `Captioner.name` (the class name for a family that sets none)."""
    return family.name or family.__qualname__


def variant(name: str) -> ModelSpec:
    """The registered variant `name` (an unknown name: a `UserError` with "did you mean")."""
    from idcbench.registry import MODELS

    return MODELS.get(name)


def resolve(name: str, overrides: Mapping[str, Any] | None = None) -> tuple[ModelSpec, dict[str, Any]]:
    """(variant, its whole config): the family's defaults <- the variant's config <- `overrides`, every key checked
    against the family's (with "did you mean"). What a run hashes and a model is built with."""
    spec = variant(name)
    check_config(name, spec.family, deep_merge(spec.config, overrides or {}))
    return spec, spec.full_config(overrides)


def create_model(name: str, **overrides: Any) -> Captioner:
    """timm-style entry point: build a registered variant, config keys overridden by `overrides`.

    >>> create_model("most-frequent").name
    'most-frequent'
    """
    spec, config = resolve(name, overrides)
    return spec.family(config)


def list_models(pattern: str = "*") -> list[str]:
    from idcbench.registry import MODELS

    return MODELS.names(pattern)


# ------------------------------------------------------------------------------------------------- variants
def variant_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """The config of a variant file: its ``config`` group, else every top-level key that is not in `VARIANT_KEYS`.

    >>> variant_config({"description": "d", "k": 3}), variant_config({"config": {"k": 3}, "name": "n"})
    ({'k': 3}, {'k': 3})
    """
    return dict(data["config"]) if "config" in data else {k: v for k, v in data.items() if k not in VARIANT_KEYS}


def register_variants(config_dir: Path, families: Mapping[str, str], default_family: str | None = None) -> None:
    """Register every ``*.json`` in `config_dir` as a model variant (configs are data). A file names its
    ``family`` (a key of `families`, whose values are ``"module:Class"``; `default_family` when absent), its
    ``description`` (required: `idcbench list models` shows it), optional ``name`` (default: the file stem) and
    ``aliases``, and its config keys, either under ``config`` or at the top level."""
    from idcbench.registry import MODELS

    for path in sorted(Path(config_dir).glob("*.json")):
        data = json.loads(path.read_text())
        family = data.get("family", default_family)
        if family not in families:
            raise ValueError(f"{path}: unknown family {family!r} (known: {', '.join(families)})")
        if not data.get("description"):
            raise ValueError(f"{path}: every variant needs a description (`idcbench list models` shows it)")
        MODELS.add(data.get("name", path.stem), ModelSpec(families[family], variant_config(data), data["description"]),
                   description=data["description"], aliases=tuple(data.get("aliases", ())))


# --------------------------------------------------------------------------------------------- saved models
def saved_family(directory: Path) -> str | None:
    """The family a saved model folder names (its marker, else the ``family`` of its ``config.json``), or None for
    a folder idcbench did not write (e.g. a bare PEFT adapter)."""
    for name in (MARKER, "config.json"):
        path = directory / name
        if path.is_file():
            data = read_json(path, what="saved model config")
            if isinstance(data, dict) and isinstance(data.get("family"), str):
                return data["family"]
    return None


def saved_variant(directory: Path) -> str | None:
    """The registered variant to read a saved model folder with: the one its marker names, else one of the family
    it names (the variant named like the family first), else None."""
    from idcbench.registry import MODELS

    marker = directory / MARKER
    if marker.is_file():
        name = read_json(marker, what="model marker").get("model")
        if isinstance(name, str) and name in MODELS:
            return name
    family = saved_family(directory)
    if family is None:
        return None
    if family in MODELS:
        return family
    return next((n for n in MODELS.names() if _same_family(family, MODELS.get(n).family)), None)


def _same_family(saved: str, family: type[Captioner]) -> bool:
    return saved in (family_name(family), family.__qualname__)  # the class name: folders saved before names


def load(directory: str | Path, name: str, *, overrides: Mapping[str, Any] | None = None,
         config: Mapping[str, Any] | None = None, what: str | None = None) -> Captioner:
    """The model saved in `directory`, as variant `name`'s family reads it: a folder idcbench wrote keeps its own
    config (`overrides`, the user's ``--config``, go on top); a folder it did not write (a bare adapter, another
    tool's export) is read with `config`, the run's whole resolved config. A folder of another family, or one the
    family cannot read, is one line that says so."""
    directory, spec = Path(directory), variant(name)
    what = what or str(directory)
    saved = saved_family(directory)
    if saved is not None and not _same_family(saved, spec.family):
        raise UserError(f"{what}: saved by a {saved} model, not by {name!r} ({family_name(spec.family)}); pass a "
                        f"checkpoint of {name}")
    given = dict(overrides or {}) if saved is not None else dict(config or overrides or {})
    try:
        return spec.family.load(directory, **given)
    except UserError:
        raise
    except _LOAD_ERRORS as e:
        raise _load_error(what, name, e) from None


def from_init(init: str | Path, name: str, *, overrides: Mapping[str, Any] | None = None,
              config: Mapping[str, Any] | None = None) -> Captioner:
    """``--init``: a folder is `load`ed; a file is given to the model as its ``init`` config entry (e.g. CLIP4IDC's
    official ``pytorch_model.bin.*``), the model built with `config` (default: the variant's resolved config)."""
    init = Path(init)
    if init.is_dir():
        return load(init, name, overrides=overrides, config=config, what=f"--init {init}")
    spec, resolved = resolve(name, overrides) if config is None else (variant(name), dict(config))
    try:
        return spec.family({**resolved, "init": str(init.resolve())})
    except UserError:
        raise
    except _LOAD_ERRORS as e:
        raise _load_error(f"--init {init}", name, e) from None


def save(model: Captioner, directory: str | Path, *, name: str, spec_hash: str | None = None,
         compact: bool = False) -> Path:
    """Save `model` into `directory` atomically: into a temporary folder, the marker last (variant, family, the run
    it came from), then renamed; processes that save the same model at once agree (one of them wins). `compact`:
    the family's smallest form for shipping (`Captioner.export`)."""
    target = Path(directory)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (model.export if compact else model.save)(tmp)
        write_json_atomic(tmp / MARKER, {"model": name, "family": family_name(type(model)), "spec_hash": spec_hash})
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MARKER).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_saved(directory: str | Path) -> bool:
    """Whether `directory` holds a completely saved model (its marker is there)."""
    return (Path(directory) / MARKER).exists()


def _load_error(what: str, name: str, err: Exception) -> UserError:
    first = " ".join(str(err).split())[:300]
    return UserError(f"{what}: not a checkpoint of model {name!r} (or of another shape): {type(err).__name__}: {first}")
