"""Package discovery for the one distribution "idcbench" (its metadata lives in pyproject.toml).

The import package ``idcbench`` is three folders: ``idcbench/`` itself, ``models/`` (as ``idcbench.models``) and
``datasets/`` (as ``idcbench.datasets``; a top-level ``datasets`` would shadow Hugging Face's). This file maps them
and finds every package under them and every data file in them, so that a new folder with an ``__init__.py`` or a new
config, prompt or weights file is in the wheel without editing a list (``tests/test_wheel.py`` builds the wheel and
checks it against the tracked files).
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOTS = {"idcbench": "idcbench", "idcbench.models": "models", "idcbench.datasets": "datasets"}
CODE_SUFFIXES = {".py", ".pyc", ".pyo"}


def package_folders() -> dict[str, Path]:
    """Every package under the three roots -> its folder."""
    out = {}
    for name, folder in ROOTS.items():
        out[name] = Path(folder)
        for sub in find_packages(folder):
            out[f"{name}.{sub}"] = Path(folder, *sub.split("."))
    return out


def package_data(folders: dict[str, Path]) -> dict[str, list[str]]:
    """Every non-code file under the roots, listed under the nearest package folder above it."""
    owners = sorted(folders.items(), key=lambda kv: len(kv[1].parts), reverse=True)
    data: dict[str, list[str]] = {}
    for root in ROOTS.values():
        for f in sorted(Path(root).rglob("*")):
            if f.is_file() and f.suffix not in CODE_SUFFIXES and "__pycache__" not in f.parts:
                name, folder = next((n, d) for n, d in owners if d in f.parents)
                data.setdefault(name, []).append(f.relative_to(folder).as_posix())
    return data


FOLDERS = package_folders()
setup(
    packages=sorted(FOLDERS),
    package_dir={name: str(folder) for name, folder in FOLDERS.items() if name in ROOTS and name != "idcbench"},
    package_data=package_data(FOLDERS),
)
