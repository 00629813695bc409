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
from idcbench.errors import UserError
from idcbench.rundir import prediction_record, read_records
from idcbench.run.reporter import Reporter

DEBUG_DELAY_ENV = "IDCBENCH_DEBUG_BATCH_DELAY"  # seconds to sleep after each captioned batch (tests kill runs)


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def caption_examples(model: Captioner, examples: Sequence[Example], out_file: Path, *, batch_size: int,
                     done: Mapping[str, str], reporter: Reporter, label: str = "caption") -> int:
    """Caption the examples not in `done`, appending ``{"id", "caption"}`` lines to `out_file`, flushed and fsync'ed
    per batch. Returns the number captioned now."""
    todo = [e for e in examples if e.id not in done]
    read_records(out_file, repair=True)
    delay = float(os.environ.get(DEBUG_DELAY_ENV, "0") or 0)
    reporter.begin(label, len(examples), len(examples) - len(todo))
    n = 0
    with open(out_file, "a", encoding="utf-8") as f:
        for batch in _batches(todo, batch_size):
            told = 0

            def answered(k: int = 1) -> None:
                nonlocal told
                told += k
                reporter.advance(label, k)

            model.on_answer = answered
            try:
                captions = model.caption([e.pair for e in batch])  # the two images only: no references, no tags
            except UserError:
                raise
            except OSError as e:  # PIL's UnidentifiedImageError is an OSError
                if getattr(e, "errno", None) == errno.ENOSPC:
                    raise
                raise UserError(f"captioning {batch[0].id} .. {batch[-1].id}: cannot read an image: {e}") from None
            finally:
                model.on_answer = None
            if len(captions) != len(batch) or not all(isinstance(c, str) for c in captions):
                raise RuntimeError(f"{type(model).__name__}.caption returned {len(captions)} items for "
                                   f"{len(batch)} pairs (expected one string per pair)")
            f.write("".join(json.dumps(prediction_record(e.id, c), ensure_ascii=False) + "\n" for e, c in zip(batch, captions)))
            f.flush()
            os.fsync(f.fileno())
            n += len(batch)
            reporter.advance(label, max(0, len(batch) - told))
            if delay:
                time.sleep(delay)
    reporter.end(label)
    return n
