"""One process per run directory: an advisory `fcntl.flock` on ``RUN_DIR/.lock``.

A whole run (`idcbench run`, `idcbench score`) holds the lock exclusively; the jobs of ``--shard I --num-shards N``
share it (they write separate files) and each holds its own shard's lock exclusively. A process that finds the
directory in use says so through the reporter and waits; under torchrun only rank 0 takes the lock (the other ranks
wait for it at a barrier). The lock goes with the process: a killed holder frees it at once.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> with hold(d):
...     holder(d) == os.getpid()
True
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Iterator

from idcbench.run.reporter import Reporter
from idcbench.rundir import LOCK_FILE


def lock_path(run_dir: Path, shard: str | None = None) -> Path:
    """The lock file of a run directory (``.lock``), or of one of its shards (``.lock.shard-I-of-N``)."""
    return run_dir / (LOCK_FILE if shard is None else f"{LOCK_FILE}.{shard}")


def holder(run_dir: Path, shard: str | None = None) -> int | None:
    """The process id recorded by the last exclusive holder (it may have finished since), or None."""
    try:
        first = lock_path(run_dir, shard).read_text(encoding="utf-8").split(maxsplit=1)
        return int(first[0]) if first else None
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(path: Path, *, shared: bool, what: str, reporter: Reporter) -> Iterator[None]:
    with open(path, "a+", encoding="utf-8") as f:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(f, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            reporter.message(f"{what} is in use by process {who}; waiting for it to finish (Ctrl-C to stop)")
            fcntl.flock(f, mode)
        if shared:
            yield
            return
        _record(f, f"{os.getpid()} ({' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])})")
        try:
            yield
        finally:
            _record(f, "")  # released: no stale name for the next waiter


def _record(f: IO[str], text: str) -> None:
    f.seek(0)
    f.truncate()
    f.write(text)
    f.flush()


@contextmanager
def hold(run_dir: Path, *, shard: str | None = None, reporter: Reporter | None = None) -> Iterator[None]:
    """Hold `run_dir` for this process: exclusively, or with `shard` (a shard file's name) shared with the other
    shards and exclusively for that shard. Creates `run_dir` when missing."""
    reporter = reporter or Reporter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(_locked(lock_path(run_dir), shared=shard is not None, what=str(run_dir),
                                     reporter=reporter))
        if shard is not None:
            stack.enter_context(_locked(lock_path(run_dir, shard), shared=False, what=f"{run_dir} ({shard})",
                                         reporter=reporter))
        yield
