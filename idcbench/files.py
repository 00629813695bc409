"""Whole-file writes that a reader (or a crash) sees complete or not at all.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a" / "x.txt"
>>> write_atomic(p, "hello")
>>> p.read_text()
'hello'
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """A temporary path next to `path` for a writer that wants a file name (``torch.save``, safetensors): moved onto
    `path` when the block succeeds, removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def torch_save_atomic(obj: object, path: str | Path) -> None:
    """``torch.save`` through `atomic_target`: a crash leaves the old file or the new one."""
    import torch

    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file so that a reader (or a crash) sees the old content or the new one, never a mix."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_target(path) as tmp, open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def check_output(path: str | Path, what: str, *, directory: bool = False) -> None:
    """Raise a one-line `UserError` now, before any work, when `path` cannot be written (a directory where a file is
    wanted, a regular file on the way, a read-only or virtual file system such as ``/proc``).

    >>> check_output("/proc/idcbench-out.json", "--json")
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: --json /proc/idcbench-out.json: cannot write there (...); choose another path
    """
    import tempfile

    from idcbench.errors import UserError

    path = Path(path).expanduser()
    if path.exists() and path.is_dir() != directory:
        raise UserError(f"{what} {path}: is {'a file' if directory else 'a directory'}; give a "
                        f"{'folder' if directory else 'file name'}")
    parent = path if directory and path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    try:
        if not parent.is_dir():
            raise NotADirectoryError(f"{parent} is a file")
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise UserError(f"{what} {path}: cannot write there ({e.strerror or e}); choose another path") from None
