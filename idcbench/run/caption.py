"""Captioning: batches over the run's share of the split (all of it, a torchrun rank's strided shard or a
``--shard``), appended and fsync'ed per batch (a killed run resumes from them), then merged in dataset order.

A pair the model has no caption for (`Caption.failed`, e.g. a server whose answer stayed empty) is written with its
empty caption and the reason (``"failed"``): it is scored as it is, but it is not done, so a rerun asks it again and
its new line replaces the failed one."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from idcbench.captioner import Captioner
from idcbench.data import Example
from idcbench.distributed import merge_ordered
from idcbench.errors import UserError
from idcbench.files import write_atomic
from idcbench.run.reporter import Reporter

PREDICTIONS = "predictions.jsonl"
DEBUG_DELAY_ENV = "IDCBENCH_DEBUG_BATCH_DELAY"  # seconds to sleep after each captioned batch (tests kill runs)


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def partial_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("predictions.rank*.jsonl")) + sorted(run_dir.glob("predictions.shard-*-of-*.jsonl"))


def shard_file(index: int, count: int) -> str:
    return f"predictions.shard-{index}-of-{count}.jsonl"


def read_predictions(path: Path, *, repair: bool = False) -> list[dict[str, str]]:
    """Records of an append-only predictions file. A torn last line (no newline: the process died while writing it)
    is dropped, and with `repair` cut from the file so that appending continues cleanly."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and repair:
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for lineno, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec.get("id"), str) or not isinstance(rec.get("caption"), str):
                raise ValueError("needs string 'id' and 'caption'")
        except (json.JSONDecodeError, ValueError, AttributeError) as e:
            raise UserError(f"{path}: line {lineno} is not a prediction record ({e}); delete the file to recompute "
                            "it, or rerun with --force") from None
        kept = {"id": rec["id"], "caption": rec["caption"]}
        for extra in ("raw", "failed"):  # a model's raw answer (`Caption.raw`); why it has none (`Caption.failed`)
            if isinstance(rec.get(extra), str):
                kept[extra] = rec[extra]
        records.append(kept)
    return records


def collect_predictions(run_dir: Path, ids: Sequence[str]) -> dict[str, str]:
    """The pairs done in the run directory (merged file, rank and shard files): id -> caption. Failed pairs are not
    done (a rerun asks them again); `collect_records` has them too."""
    return {i: r["caption"] for i, r in collect_records(run_dir, ids).items() if "failed" not in r}


def collect_records(run_dir: Path, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every pair's record saved in the run directory (``raw`` and ``failed`` kept where a file has them).

    Within one file an id occurs once, but for a failed line that a later line replaces; across files the same id
    may occur only with the same caption (a merge killed before it removed the rank files), a failed line giving way
    to any other; an id outside the split is an error."""
    known = set(ids)
    out: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    for path in [run_dir / PREDICTIONS, *partial_files(run_dir)]:
        seen: set[str] = set()
        for rec in read_predictions(path):
            i, cap = rec["id"], rec["caption"]
            if i in seen and "failed" not in out[i]:
                raise UserError(f"{path}: id {i!r} occurs twice; delete the file to recompute it, or rerun with --force")
            seen.add(i)
            if i not in known:
                raise UserError(f"{path}: id {i!r} is not in the evaluated split; this run directory does not match, "
                                "rerun with --force")
            if i in out and "failed" not in out[i] and "failed" not in rec and out[i]["caption"] != cap:
                raise UserError(f"id {i!r} has different captions in {origin[i]} and {path.name}; rerun with --force")
            if i not in out or "failed" in out[i] or ("raw" in rec and "failed" not in rec):
                out[i], origin[i] = rec, path.name
    return out


def failed_predictions(run_dir: Path) -> dict[str, str]:
    """The failed pairs of the run's merged predictions file: id -> why the model has no caption."""
    return {r["id"]: r["failed"] for r in read_predictions(run_dir / PREDICTIONS) if "failed" in r}


def _record(example_id: str, caption: str) -> dict[str, str]:
    """A predictions line; a `Caption` also keeps its raw answer (``raw``) beside the scored caption, and why there
    is none (``failed``)."""
    rec = {"id": example_id, "caption": str(caption)}
    for extra in ("raw", "failed"):
        value = getattr(caption, extra, None)
        if isinstance(value, str):
            rec[extra] = value
    return rec


def caption_examples(model: Captioner, examples: Sequence[Example], out_file: Path, *, batch_size: int,
                     done: Mapping[str, str], reporter: Reporter, label: str = "caption") -> int:
    """Caption the examples not in `done`, appending ``{"id", "caption"}`` lines to `out_file`, flushed and fsync'ed
    per batch. Returns the number captioned now."""
    todo = [e for e in examples if e.id not in done]
    read_predictions(out_file, repair=True)
    delay = float(os.environ.get(DEBUG_DELAY_ENV, "0") or 0)
    reporter.begin(label, len(examples), len(examples) - len(todo))
    n = 0
    with open(out_file, "a", encoding="utf-8") as f:
        for batch in _batches(todo, batch_size):
            try:
                captions = model.caption([e.pair for e in batch])  # the two images only: no references, no tags
            except UserError:
                raise
            except OSError as e:  # PIL's UnidentifiedImageError is an OSError
                if getattr(e, "errno", None) == errno.ENOSPC:
                    raise
                raise UserError(f"captioning {batch[0].id} .. {batch[-1].id}: cannot read an image: {e}") from None
            if len(captions) != len(batch) or not all(isinstance(c, str) for c in captions):
                raise RuntimeError(f"{type(model).__name__}.caption returned {len(captions)} items for "
                                   f"{len(batch)} pairs (expected one string per pair)")
            f.write("".join(json.dumps(_record(e.id, c), ensure_ascii=False) + "\n" for e, c in zip(batch, captions)))
            f.flush()
            os.fsync(f.fileno())
            n += len(batch)
            reporter.advance(label, len(batch))
            if delay:
                time.sleep(delay)
    reporter.end(label)
    return n


def merge_predictions(run_dir: Path, examples: Sequence[Example]) -> dict[str, str]:
    """Merge every predictions file into predictions.jsonl in dataset order (atomic), then drop the partial files."""
    ids = [e.id for e in examples]
    records = merge_ordered(collect_records(run_dir, ids).values(), ids, where=str(run_dir))
    write_atomic(run_dir / PREDICTIONS,
                 "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for path in partial_files(run_dir):
        path.unlink(missing_ok=True)
    return {r["id"]: r["caption"] for r in records}
