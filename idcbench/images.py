"""Images for models: decoded and resized once to uint8 (in worker processes on a GPU machine), normalised on the device.

One path for training, captioning and feature extraction:

- `decode_resized`: the file through `idcbench.data.load_image` (RGB), a bicubic resize to size x size without crop
  or kept aspect ratio (CLIP4IDC's preprocessing), uint8 3 x size x size;
- `ImagePipeline.batches`: jobs (tuples of path lists) -> tuples of uint8 batches on the device, in order. With
  `workers` > 0 the files are decoded in persistent DataLoader worker processes, prefetched, pinned and copied without
  blocking; with 0 (the CPU default) in this process. The pixels are the same either way;
- `ImageCache`: an optional store of decoded images on disk (uint8 segments that readers memory-map, an SQLite index)
  under ``cache_dir()/images``, one entry per (file, its byte size and modification time, size, Pillow version): a
  changed file is decoded again, an unchanged one is decoded once for every later epoch, stage, model and run;
- `Normalize`: uint8 -> float ``(x / 255 - mean) / std`` on whatever device the batch is on.

>>> import tempfile
>>> from PIL import Image
>>> d = Path(tempfile.mkdtemp())
>>> Image.new("RGB", (32, 16), (255, 0, 0)).save(d / "red.png")
>>> x = ImagePipeline(8).read([d / "red.png"])
>>> x.shape, x.dtype, x[0, :, 0, 0].tolist()
(torch.Size([1, 3, 8, 8]), torch.uint8, [255, 0, 0])
>>> [tuple(b.shape) for b, a in ImagePipeline(8).stacked([[d / "red.png"] * 5] * 2, 2)]
[(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
>>> Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(x)[0, :, 0, 0].tolist()
[1.0, -1.0, -1.0]
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.profiler import record_function

from idcbench.data import cache_dir, load_image
from idcbench.errors import UserError

CACHE_VERSION = 1
JOB_ROWS = 64  # rows per decoding job when a caller asks for larger batches (load balance across workers)

# (path, where): where = (segment file, slot) in an `ImageCache`, or None (decode the file)
Item = tuple[Path, "tuple[str, int] | None"]


def decode_resized(path: str | Path, size: int, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """RGB pixels of `path` resized (bicubic) to size x size: uint8, 3 x size x size (written into `out` if given)."""
    from PIL import Image

    with record_function("idcbench.decode"):
        img = load_image(path)
    with record_function("idcbench.resize"):
        img = img.resize((size, size), Image.BICUBIC)
        hwc = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1)
        if out is None:
            return hwc.contiguous()
        return out.copy_(hwc)


def default_workers(device: str) -> int:
    """Decoding workers: on CUDA this rank's share of the CPUs but one (at most 16); elsewhere none (in process)."""
    if not str(device).startswith("cuda"):
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(16, cpus // ranks - 1))


class Normalize:
    """uint8 images -> float32 ``(x / 255 - mean) / std`` per channel, on the images' device."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device not in self._on:
            self._on[x.device] = (self.mean.to(x.device), self.std.to(x.device))
        mean, std = self._on[x.device]
        with record_function("idcbench.normalize"):
            x = x.float().div_(255.0)
            return (x - mean) / std


# ---- the decoded-image cache ----------------------------------------------------------------------------------------
class ImageCache:
    """Decoded images at one size, on disk: uint8 segment files (N x 3 x size x size, memory-mapped by readers) and an
    SQLite index from each file's key to its (segment, slot).

    A key is sha256 of (resolved path, byte size, mtime in ns, Pillow version): a file that changes gets a new key and
    is decoded again; nothing is ever read for a file whose key is not in the index. `add` decodes what is missing
    under an exclusive lock (torchrun ranks and concurrent runs wait for one builder and then read its segment) and
    writes the segment before its keys, so a killed builder leaves no entry behind. Never changes a result; when the
    cache cannot be written (disk full, read-only) it logs a warning and the images are decoded as without it.
    Entries are never deleted: remove ``cache_dir()/images`` to reclaim the space.
    """

    def __init__(self, size: int, root: str | Path | None = None):
        self.size = int(size)
        self.dir = Path(root if root is not None else cache_dir() / "images") / f"v{CACHE_VERSION}-{self.size}px"
        self.where: dict[Path, tuple[str, int]] = {}  # paths looked up or added by this process
        self._looked: set[Path] = set()
        self._db: sqlite3.Connection | None = None
        self.broken = False

    def _index(self) -> sqlite3.Connection:
        if self._db is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.dir / "index.sqlite", timeout=600, check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, segment TEXT, slot INTEGER)")
            self._db.commit()
        return self._db

    @staticmethod
    def key(path: Path) -> str | None:
        """The file's cache key, or None when it cannot be stat'ed (decoding it then raises the user's error)."""
        import PIL

        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            return None
        return hashlib.sha256(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0{PIL.__version__}".encode()).hexdigest()

    def lookup(self, paths: Iterable[Path]) -> None:
        """Find `paths` (not looked up before) in the index; hits go to `where`."""
        todo = [Path(p) for p in dict.fromkeys(map(Path, paths)) if Path(p) not in self._looked]
        if not todo or self.broken:
            return
        self._looked.update(todo)
        keys = {p: k for p in todo if (k := self.key(p)) is not None}
        try:
            db, found = self._index(), {}
            values = list(set(keys.values()))
            for i in range(0, len(values), 900):
                part = values[i: i + 900]
                rows = db.execute(f"SELECT key, segment, slot FROM images WHERE key IN ({','.join('?' * len(part))})", part)
                found.update((k, (str(self.dir / seg), int(slot))) for k, seg, slot in rows)
        except (OSError, sqlite3.Error) as e:
            self._disable(e)
            return
        present = {seg for seg in {w[0] for w in found.values()} if os.path.isfile(seg)}  # a deleted segment: decode
        found = {k: w for k, w in found.items() if w[0] in present}
        self.where.update((p, found[k]) for p, k in keys.items() if k in found)

    def add(self, paths: Sequence[Path], decode: Callable[[list[Path]], Iterator[torch.Tensor]],
            progress: Callable[[int, int], None] | None = None) -> None:
        """Decode the `paths` the index lacks (through `decode`, batches in order) into one new segment."""
        self.lookup(paths)
        if self.broken or all(Path(p) in self.where for p in paths):
            return
        segment = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.dir / ".lock", "w") as lock:
                # One builder at a time; the others then find its entries. A POSIX lock (lockf, not flock): the
                # decoding workers forked while it is held do not inherit it.
                fcntl.lockf(lock, fcntl.LOCK_EX)
                self._looked.difference_update(map(Path, paths))
                self.lookup(paths)
                keys = {p: k for p in dict.fromkeys(map(Path, paths)) if p not in self.where and (k := self.key(p))}
                missing = list(keys)
                if not missing:
                    return
                segment = self.dir / f"seg-{uuid.uuid4().hex}.u8"
                pixels = np.memmap(segment, dtype=np.uint8, mode="w+", shape=(len(missing), 3, self.size, self.size))
                done = 0
                for batch in decode(missing):
                    pixels[done: done + len(batch)] = batch.numpy()
                    done += len(batch)
                    if progress is not None:
                        progress(done, len(missing))
                pixels.flush()
                del pixels
                with open(segment, "rb+") as f:
                    os.fsync(f.fileno())
                # a file that changed while it was decoded keeps no entry (its pixels may be either version)
                same = [(i, p) for i, p in enumerate(missing) if self.key(p) == keys[p]]
                db = self._index()
                db.executemany("INSERT OR IGNORE INTO images VALUES (?, ?, ?)", [(keys[p], segment.name, i) for i, p in same])
                db.commit()
                self.where.update((p, (str(segment), i)) for i, p in same)
                segment = None
        except (OSError, sqlite3.Error) as e:
            self._disable(e)
        finally:
            if segment is not None:  # failed half-way: no index entry points into it
                segment.unlink(missing_ok=True)

    def _disable(self, e: Exception) -> None:
        logging.getLogger(__name__).warning("image cache %s disabled (%s): decoding every image instead", self.dir, e)
        self.broken = True


# ---- what a worker runs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Failure:
    """A user's error in a worker (a missing or undecodable image), raised again as one line in the main process."""

    message: str


_SEGMENTS: dict[str, np.memmap] = {}  # per process


def _segment(path: str, size: int) -> np.ndarray:
    if path not in _SEGMENTS:
        _SEGMENTS[path] = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, size, size)
    return _SEGMENTS[path]


class _Reader(torch.utils.data.Dataset):
    """A job (tuple of item lists) -> tuple of uint8 batches: from the cache's segments, else decoded. With `memory`
    the main process keeps what it decoded (``cache_images``); workers do not (each would hold its own copy of the
    dataset: `ImageCache` is what workers share)."""

    def __init__(self, size: int, memory: bool):
        self.size, self.memory = size, memory
        self._kept: dict[Path, torch.Tensor] = {}

    def __getitem__(self, job: Sequence[Sequence[Item]]) -> tuple[torch.Tensor, ...] | _Failure:
        try:
            return tuple(self._stack(items) for items in job)
        except UserError as e:
            return _Failure(str(e))

    def _stack(self, items: Sequence[Item]) -> torch.Tensor:
        out = torch.empty((len(items), 3, self.size, self.size), dtype=torch.uint8)
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker:
            out.share_memory_()  # a worker's result crosses to the main process without another copy
        for row, (path, where) in zip(out, items):
            kept = self._kept.get(path)
            if kept is not None:
                row.copy_(kept)
            elif where is not None:
                row.numpy()[...] = _segment(where[0], self.size)[where[1]]
            else:
                decode_resized(path, self.size, out=row)
            if self.memory and kept is None and not in_worker:
                self._kept[path] = row.clone()
        return out


class _Jobs(torch.utils.data.Sampler):
    """The current call's jobs, handed to the DataLoader as its 'indices' (consumed lazily as workers free up)."""

    def __init__(self):
        self.jobs: Iterator[Any] = iter(())

    def __iter__(self) -> Iterator[Any]:
        return self.jobs


class ImagePipeline:
    """Lists of image paths -> uint8 batches on `device`, in order.

    `workers` > 0: one persistent DataLoader whose workers decode (or read from `cache`), prefetch `prefetch` jobs
    each, return shared-memory tensors that are pinned (CUDA) and copied without blocking. A pipeline serves one
    `batches` iteration at a time (a new call abandons the previous one); models keep one for evaluation and one per
    training stage. `memory`: keep the pixels decoded in this process in memory.
    """

    def __init__(self, size: int, *, device: str = "cpu", workers: int = 0, memory: bool = False,
                 cache: ImageCache | None = None, prefetch: int = 2):
        self.size, self.device, self.workers, self.cache, self.prefetch = int(size), str(device), int(workers), cache, prefetch
        self._reader = _Reader(self.size, memory)
        self._jobs = _Jobs()
        self._loader: torch.utils.data.DataLoader | None = None

    def read(self, paths: Sequence[Path]) -> torch.Tensor:
        """uint8 batch of `paths` in this process, on the CPU."""
        return _raise(self._reader[(self._items(paths),)])[0]

    def _items(self, paths: Sequence[Path]) -> list[Item]:
        if self.cache is None:
            return [(Path(p), None) for p in paths]
        self.cache.lookup(paths)
        return [(Path(p), self.cache.where.get(Path(p))) for p in paths]

    def _data(self) -> torch.utils.data.DataLoader:
        if self._loader is None:
            self._loader = torch.utils.data.DataLoader(
                self._reader, batch_size=None, sampler=self._jobs, num_workers=self.workers,
                pin_memory=self.device.startswith("cuda"), prefetch_factor=self.prefetch, persistent_workers=True,
                generator=torch.Generator())  # its own seed: iterating never draws from the global RNG
        return self._loader

    def batches(self, jobs: Iterable[Sequence[Sequence[Path]]], *,
                on_device: bool = True) -> Iterator[tuple[torch.Tensor, ...]]:
        """For each job (a tuple of path lists), its uint8 batches (N x 3 x size x size each) on the device (or the
        host when not `on_device`)."""
        items = (tuple(map(self._items, job)) for job in jobs)
        if self.workers == 0:
            results: Iterable[Any] = (self._reader[job] for job in items)
        else:
            self._jobs.jobs = items
            results = self._data()
        for out in results:
            yield tuple(self._to_device(t) if on_device else t for t in _raise(out))

    def stacked(self, lists: Sequence[Sequence[Path]], batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """Batches of `batch_size` rows of the parallel path `lists` (e.g. befores and afters) on the device: with
        workers each batch is decoded as jobs of at most `JOB_ROWS` rows, small enough that every worker gets one
        (a call of a few pairs is decoded in parallel too), and concatenated on the device.
        """
        n = len(lists[0]) if lists else 0
        rows = batch_size if self.workers == 0 else min(batch_size, JOB_ROWS, max(1, -(-n // self.workers)))
        spans, per_batch = [], []
        for start in range(0, n, batch_size):
            end = min(start + batch_size, n)
            parts = [(a, min(a + rows, end)) for a in range(start, end, rows)]
            spans += parts
            per_batch.append(len(parts))
        out = self.batches([lst[a:b] for lst in lists] for a, b in spans)
        for k in per_batch:
            parts = [next(out) for _ in range(k)]
            yield parts[0] if k == 1 else tuple(torch.cat(ts) for ts in zip(*parts))

    def add_to_cache(self, paths: Sequence[Path], progress: Callable[[int, int], None] | None = None) -> None:
        """Decode `paths` missing from the cache into it (no-op without a cache)."""
        if self.cache is None:
            return

        def decode(missing: list[Path]) -> Iterator[torch.Tensor]:
            jobs = ((missing[i: i + JOB_ROWS],) for i in range(0, len(missing), JOB_ROWS))
            return (x for x, in self.batches(jobs, on_device=False))

        self.cache.add([Path(p) for p in paths], decode, progress)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        with record_function("idcbench.h2d"):
            return x.to(self.device, non_blocking=x.is_pinned())

    def close(self) -> None:
        """Stop the workers (they also stop with the process)."""
        iterator = getattr(self._loader, "_iterator", None)  # the persistent workers' (DataLoader keeps it there)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self._loader = None


def _raise(out: Any) -> Any:
    if isinstance(out, _Failure):
        raise UserError(out.message)
    return out
