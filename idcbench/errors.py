"""Errors a user can cause.

A `UserError` carries one line that says what went wrong, where, and how to fix it. The CLI prints that line
and exits with code 2, never a traceback. Library code raises it for anything the user can correct: a bad file,
a missing image, an unknown name, a missing Java runtime or weights file.

>>> raise UserError("predictions.json: line 3, column 5: invalid JSON (Expecting ',' delimiter)")
Traceback (most recent call last):
...
idcbench.errors.UserError: predictions.json: line 3, column 5: invalid JSON (Expecting ',' delimiter)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A problem the user can fix; its message is one line shown without a traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split("\n")))


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
