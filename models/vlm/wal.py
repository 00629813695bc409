"""A write-ahead log of a run's requests: one JSON line per answer, keyed by the sha256 of the request body, so a run
killed at any point resumes without asking again.

An answer is written and flushed as it arrives: a killed process loses none. It is not fsync'ed (an fsync per answer,
or per batch, cost more than the requests on a fast server): the captions of a finished batch are, by the runner, in
``predictions.jsonl``, so a crash of the machine too loses at most the answers of the batch in flight. A request that stayed unanswered after its retries (the
server's answer was empty) is logged as a failure: it counts in the usage (its tokens were spent) but is never an
answer, so the run asks it again when it is repeated. An empty answer in a log of an older idcbench is not one
either.

Each process of a run appends to its own file (``requests.jsonl``, or ``requests.<part>.jsonl`` for a ``--shard`` or
torchrun rank) and reads all of them; a torn last line (a process died while writing it) is skipped, and cut from the
process's own file before it appends.

>>> import tempfile
>>> run_dir = Path(tempfile.mkdtemp())
>>> log = RequestLog(run_dir)
>>> key = request_key({"model": "m", "messages": []})
>>> log.append(key, {"content": "the cube moved", "usage": {"prompt_tokens": 7, "completion_tokens": 4}})
>>> log.append("k2", {"failed": "empty answer", "pair": ["b.png", "a.png"], "usage": {"prompt_tokens": 7}})
>>> other = RequestLog(run_dir, part="shard-1-of-2")
>>> other.get(key)["content"], "k2" in other
('the cube moved', False)
>>> usage = other.usage()
>>> usage["requests"], usage["failed_requests"], usage["total_tokens"], usage["failed_pairs"]
(1, 1, 18, [{'before': 'b.png', 'after': 'a.png', 'reason': 'empty answer'}])
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from idcbench.errors import UserError
from idcbench.spec import canonical_json

PREFIX = "requests"
TOKENS = ("prompt_tokens", "completion_tokens")


def request_key(body: dict[str, Any]) -> str:
    """sha256 of the request body's canonical JSON (model, messages with the images' bytes, decoding settings): the
    bytes the client sends."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def is_answer(record: dict[str, Any]) -> bool:
    """A logged answer (not a failure, not an empty answer an older idcbench logged)."""
    return "failed" not in record and bool((record.get("content") or "").strip())


def log_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob(f"{PREFIX}*.jsonl"))


def _read_from(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete lines of `path` from byte `offset` (a torn last line is left for later) and the offset after
    them."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec.get("key"), str):
                raise TypeError
        except (json.JSONDecodeError, TypeError, AttributeError):
            raise UserError(f"{path}: a line after byte {offset} is not a logged request; delete the file to ask "
                            "again, or rerun with --force") from None
        records.append(rec)
    return records, offset + end


class RequestLog:
    """The requests logged in `run_dir` (all processes), appending this process's to its own file."""

    def __init__(self, run_dir: Path, part: str = ""):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / (f"{PREFIX}.{part}.jsonl" if part else f"{PREFIX}.jsonl")
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(end)
        self._answers: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, dict[str, Any]] = {}  # unanswered after retries (and not answered since)
        self._tokens = dict.fromkeys(TOKENS, 0)
        self._models: set[str] = set()  # the model ids the answers name (what the server says answered)
        self._offsets: dict[Path, int] = {}
        self._file: Any = None
        self._lock = threading.Lock()
        self.refresh()

    def _take(self, rec: dict[str, Any]) -> None:
        usage = rec.get("usage") if isinstance(rec.get("usage"), dict) else {}
        for k in TOKENS:
            self._tokens[k] += int(usage.get(k) or 0)
        key = rec["key"]
        if is_answer(rec):
            self._answers[key] = rec
            self._failures.pop(key, None)
            if isinstance(rec.get("model"), str):
                self._models.add(rec["model"])
        elif "failed" in rec and key not in self._answers:
            self._failures[key] = rec

    def refresh(self) -> None:
        """Read what every log file of the run gained since the last read (other processes append too)."""
        with self._lock:
            for path in log_files(self.run_dir):
                records, self._offsets[path] = _read_from(path, self._offsets.get(path, 0))
                for rec in records:
                    self._take(rec)

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> dict[str, Any]:
        return self._answers[key]

    def append(self, key: str, record: dict[str, Any]) -> None:
        """Log an answer (or, with a ``failed`` reason, a request left unanswered): written and flushed now."""
        rec = {"key": key, **record}
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "ab")
                self._offsets.setdefault(self.path, self._file.tell())
            self._file.write(line)
            self._file.flush()
            self._offsets[self.path] += len(line)
            self._take(rec)

    def usage(self) -> dict[str, Any]:
        """Requests answered and left unanswered, tokens spent (failed attempts included), the model ids the answers
        name and the image files of the unanswered pairs, over every log of the run (other processes' and resumes
        included)."""
        self.refresh()
        tokens = dict(self._tokens)
        failed = [{"before": rec["pair"][0], "after": rec["pair"][1], "reason": rec["failed"]}
                  for rec in self._failures.values() if isinstance(rec.get("pair"), list) and len(rec["pair"]) == 2]
        return {"requests": len(self._answers), "failed_requests": len(self._failures), **tokens,
                "total_tokens": sum(tokens.values()), "answered_by": sorted(self._models), "failed_pairs": failed}

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
