"""Read, validate and write prediction files: id -> caption.

Formats read:
- COCO results: a JSON list ``[{"image_id": ..., "caption": ...}, ...]`` (ids may be ints; they become strings);
- JSONL: one ``{"id": ..., "caption": ...}`` object per line (idcbench's own `predictions.jsonl`);
- CSV (a ``.csv`` file): a header with ``id`` (or ``image_id``) and ``caption``, one prediction per row;
- the RCC / CLIP4IDC pair ``sc_results.json`` + ``nsc_results.json`` (COCO results lists; the distractor ids
  get the suffix ``_n`` when they do not already carry it, e.g. ``"000123.png"`` -> ``"000123.png_n"``).

Every problem a user can cause is one `UserError` line naming the file (and line/column or record).

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "p.jsonl")
>>> write_jsonl(path, {"1": "a red cube moved"})
>>> read_predictions(path)
{'1': 'a red cube moved'}
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping

from idcbench.files import decode_utf8, json_lines, write_atomic
from idcbench.errors import UserError

DISTRACTOR_SUFFIX = "_n"


def _text(path: Path, role: str) -> str:
    """The file's text; `role` ("predictions file", "references file") names it in every error."""
    if not path.exists():
        raise UserError(f"{path}: {role} not found")
    if path.is_dir():
        raise UserError(f"{path}: expected a {role}, found a directory")
    return decode_utf8(path, path.read_bytes())


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise UserError(f"{where}: id must be a string or an integer, got {json.dumps(value)[:40]}")
    return str(value)


def _add(out: dict[str, str], key: str, caption: Any, where: str, first: dict[str, str]) -> None:
    if not isinstance(caption, str):
        raise UserError(f"{where}: caption of id {key!r} is not a string ({type(caption).__name__})")
    if key in out:
        raise UserError(f"{where}: duplicate id {key!r} (first at {first[key]}); keep one caption per id")
    out[key] = caption
    first[key] = where


def _read_coco(path: Path, text: str, data: Any, suffix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    if not isinstance(data, list):
        raise UserError(f"{path}: {_not_a_list(data)}")
    for k, rec in enumerate(data):
        where = f"{path}: record {k}"
        if not isinstance(rec, dict) or "caption" not in rec or ("image_id" not in rec and "id" not in rec):
            raise UserError(f"{where}: expected an object with \"image_id\" and \"caption\"")
        key = _id(rec["image_id"] if "image_id" in rec else rec["id"], where)
        if suffix and not key.endswith(suffix):
            key += suffix
        _add(out, key, rec["caption"], where, first)
    return out


def _read_jsonl(path: Path, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    for lineno, rec in json_lines(path, text):
        where = f"{path}: line {lineno}"
        if not isinstance(rec, dict) or "caption" not in rec or ("id" not in rec and "image_id" not in rec):
            raise UserError(f"{where}: expected {{\"id\": ..., \"caption\": ...}}")
        _add(out, _id(rec["id"] if "id" in rec else rec["image_id"], where), rec["caption"], where, first)
    return out


def read_predictions(path: str | Path, distractors: str | Path | None = None) -> dict[str, str]:
    """Read one predictions file (COCO results list or JSONL), or an RCC ``sc`` + ``nsc`` pair."""
    path = Path(path)
    text = _text(path, "predictions file")
    if distractors is not None:
        d = Path(distractors)
        sc = _read_coco(path, text, _load_json(path, text))
        dtext = _text(d, "distractor predictions file")
        nsc = _read_coco(d, dtext, _load_json(d, dtext), suffix=DISTRACTOR_SUFFIX)
        both = [k for k in nsc if k in sc]
        if both:
            raise UserError(f"{d}: id {both[0]!r} also in {path}; is the same file given twice?")
        return {**sc, **nsc}
    stripped = text.lstrip()
    if not stripped:
        raise UserError(f"{path}: empty predictions file")
    if path.suffix.lower() == ".csv":
        return _read_csv(path, text)
    if stripped.startswith("["):
        return _read_coco(path, text, _load_json(path, text))
    if not stripped.startswith("{"):
        raise UserError(f"{path}: not a predictions file: {FORMATS}")
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSONL: one object per line
        if isinstance(data, dict) and not _is_record(data):
            raise UserError(f"{path}: {_not_a_list(data)}")
    return _read_jsonl(path, text)


FORMATS = ("expected a COCO results list [{\"image_id\": ..., \"caption\": ...}, ...], JSONL lines "
           "{\"id\": ..., \"caption\": ...}, or a .csv file with the columns id and caption")


def _read_csv(path: Path, text: str) -> dict[str, str]:
    """A CSV of predictions: a header naming ``id`` (or ``image_id``) and ``caption``; other columns are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader)]
    key = next((k for k in ("id", "image_id") if k in header), None)
    if key is None or "caption" not in header:
        raise UserError(f"{path}:1: a CSV of predictions needs the columns id (or image_id) and caption "
                        f"(found: {', '.join(header) or 'none'})")
    at, cap = header.index(key), header.index("caption")
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    start = reader.line_num + 1
    for cells in reader:
        line, start = start, reader.line_num + 1  # a quoted caption may span lines: the row starts where it starts
        if not any(c.strip() for c in cells):
            continue
        where = f"{path}:{line}"
        if len(cells) != len(header):
            raise UserError(f"{where}: {len(cells)} cells, the header has {len(header)} ({', '.join(header)})")
        if not cells[at].strip():
            raise UserError(f"{where}: empty {key}")
        _add(out, cells[at].strip(), cells[cap], where, first)
    return out


def _is_record(data: dict) -> bool:
    """A one-line JSONL file: a record (its own errors say what it lacks), not a whole-file object."""
    return any(k in data for k in ("caption", "id", "image_id"))


def _not_a_list(data: Any) -> str:
    """Why a parsed JSON value is not a predictions file, and what is expected instead."""
    found = {dict: "a JSON object", str: "a string", type(None): "null"}.get(type(data), f"a JSON {type(data).__name__}")
    hint = ""
    if isinstance(data, dict) and "annotations" in data:
        hint = " (this looks like a COCO ground-truth file: pass it as --references)"
    elif isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        hint = " (an {id: caption} mapping: write it as [{\"image_id\": id, \"caption\": caption}, ...])"
    return (f"expected a list of {{image_id, caption}} (COCO results) or JSONL lines {{id, caption}}, "
            f"found {found}{hint}")


def _load_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: line {e.lineno}, column {e.colno}: invalid JSON ({e.msg})") from None


def read_references(path: str | Path) -> dict[str, list[str]]:
    """A COCO caption ground-truth file: ``{"annotations": [{"image_id", "caption"}, ...], ...}`` -> id -> captions
    (in file order; ``images`` may list an id more than once and is not needed)."""
    path = Path(path)
    text = _text(path, "references file")
    data = _load_json(path, text)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        hint = " (this looks like a predictions file)" if isinstance(data, list) else ""
        raise UserError(f"{path}: not a references file: expected a COCO caption file with an \"annotations\" list "
                        f"of {{image_id, caption}}{hint}")
    refs: dict[str, list[str]] = {}
    for k, ann in enumerate(data["annotations"]):
        where = f"{path}: annotation {k}"
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            raise UserError(f"{where}: expected an object with \"image_id\" and \"caption\"")
        if not isinstance(ann["caption"], str):
            raise UserError(f"{where}: caption is not a string ({type(ann['caption']).__name__})")
        refs.setdefault(_id(ann["image_id"], where), []).append(ann["caption"])
    if not refs:
        raise UserError(f"{path}: no annotations")
    return refs


def write_jsonl(path: str | Path, predictions: Mapping[str, str]) -> None:
    """Write ``{"id", "caption"}`` lines atomically (a temporary file renamed into place)."""
    write_atomic(path, "".join(json.dumps({"id": k, "caption": c}, ensure_ascii=False) + "\n" for k, c in predictions.items()))
