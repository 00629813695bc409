"""Every whole-file read and write: atomic writes (a reader, or a crash, sees a file complete or not at all), JSON
and JSONL reading with one-line errors, canonical JSON writing, sha256 of files and folders.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a" / "x.txt"
>>> write_atomic(p, "hello")
>>> p.read_text()
'hello'
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from idcbench.errors import UserError


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


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    """Read a JSON file, turning every failure into a one-line `UserError` naming the file and position."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    if path.is_dir():
        raise UserError(f"{path}: expected a {what}, found a directory")
    text = decode_utf8(path, path.read_bytes())
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})") from None


def decode_utf8(path: str | Path, raw: bytes) -> str:
    """The text of a file's bytes (a UTF-8 BOM dropped); anything else is one `UserError` naming the file."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r}); save it as UTF-8") from None


def json_lines(path: str | Path, text: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for every non-blank line of a JSONL text; a bad line is one `UserError` with its position.

    Lines end at ``\\n`` only (``\\r\\n`` too): ``json.dumps(ensure_ascii=False)`` writes U+2028, U+0085 and the like
    unescaped inside strings, and `str.splitlines` would cut a valid record there.

    >>> list(json_lines("p.jsonl", '{"a": 1}\\n\\n[2]\\r\\n{"c": "x\\u2028y"}\\n'))
    [(1, {'a': 1}), (3, [2]), (4, {'c': 'x\\u2028y'})]
    """
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: line {lineno}, column {e.colno}: invalid JSON ({e.msg})") from None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return repr(obj)


def write_json_atomic(path: str | Path, obj: Any, *, sort_keys: bool = False) -> None:
    """Indented JSON, written atomically; key order kept unless `sort_keys`."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False, default=_jsonable) + "\n")


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of a directory (relative paths and contents of every file, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files: Iterable[Path] = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def read_safetensors(path: str | Path, *, what: str, fix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, idcbench's metadata) of a safetensors file whose metadata holds one JSON object under ``idcbench``
    (one key: safetensors writes several in hash-map order, which would make the file's bytes vary); an unreadable
    file is a one-line `UserError` naming `what` it should be (and `fix`)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = json.loads((f.metadata() or {}).get("idcbench", "{}"))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable {what} ({e}){'; ' + fix if fix else ''}") from None
    return tensors, metadata
