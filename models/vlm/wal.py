"""A write-ahead log of answered requests: one JSON line per answer, keyed by the sha256 of the request body,
appended and fsync'ed as each answer arrives, so a run killed at any point resumes without asking again.

Each process of a run appends to its own file (``requests.jsonl``, or ``requests.<part>.jsonl`` for a ``--shard`` or
torchrun rank) and reads all of them; a torn last line (a process died while writing it) is skipped, and cut from the
process's own file before it appends.

>>> import tempfile
>>> run_dir = Path(tempfile.mkdtemp())
>>> log = RequestLog(run_dir)
>>> key = request_key({"model": "m", "messages": []})
>>> log.append(key, {"content": "the cube moved", "usage": {"prompt_tokens": 7, "completion_tokens": 4}})
>>> RequestLog(run_dir, part="shard-1-of-2").get(key)["content"], usage_of(run_dir)
('the cube moved', {'requests': 1, 'prompt_tokens': 7, 'completion_tokens': 4, 'total_tokens': 11, 'empty_answers': 0})
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from idcbench.errors import UserError
from idcbench.spec import canonical_json

PREFIX = "requests"


def request_key(body: dict[str, Any]) -> str:
    """sha256 of the request body's canonical JSON (model, messages with the images' bytes, decoding settings)."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _records(path: Path) -> Iterator[dict[str, Any]]:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # past the last newline: a torn line, skipped
    for lineno, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec.get("key"), str):
                raise TypeError
        except (json.JSONDecodeError, TypeError, AttributeError):
            raise UserError(f"{path}: line {lineno} is not a logged answer; delete the file to ask again, "
                            "or rerun with --force") from None
        yield rec


def log_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob(f"{PREFIX}*.jsonl"))


def read_answers(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every logged answer of the run directory, by request key."""
    return {rec["key"]: rec for path in log_files(run_dir) for rec in _records(path)}


def usage_of(run_dir: Path) -> dict[str, int]:
    """Requests answered, tokens used and empty answers, summed over every log of the run (resumes included)."""
    total = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    empty = 0
    for rec in read_answers(run_dir).values():
        total["requests"] += 1
        usage = rec.get("usage") or {}
        for k in ("prompt_tokens", "completion_tokens"):
            total[k] += int(usage.get(k) or 0)
        empty += not (rec.get("content") or "").strip()
    return {**total, "total_tokens": total["prompt_tokens"] + total["completion_tokens"], "empty_answers": empty}


class RequestLog:
    """The answers logged in `run_dir` (all processes), appending this process's to its own file."""

    def __init__(self, run_dir: Path, part: str = ""):
        self.run_dir = Path(run_dir)
        self.path = Path(run_dir) / (f"{PREFIX}.{part}.jsonl" if part else f"{PREFIX}.jsonl")
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(end)
        self._answers = read_answers(Path(run_dir))
        self._file: Any = None
        self._lock = threading.Lock()  # appends come from worker threads (the fsync stays off the event loop)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> dict[str, Any]:
        return self._answers[key]

    def append(self, key: str, record: dict[str, Any]) -> None:
        rec = {"key": key, **record}
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._answers[key] = rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
