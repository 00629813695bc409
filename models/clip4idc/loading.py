"""Batches of preprocessed images for the GPU path: decoded and resized in `DataLoader` workers, pinned, copied
without blocking. On the CPU the batches are made in-process exactly as before (same code, same values).

`make` turns one chunk of items (e.g. pairs) into a tensor or a tuple of tensors; each worker makes whole chunks.

>>> import torch
>>> [x.tolist() for x in device_batches(lambda c: torch.tensor(c), [1, 2, 3], 2, "cpu")]
[[1, 2], [3]]
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

import torch


def loader_workers() -> int:
    """DataLoader workers for image decoding: all CPUs but one (at most 16)."""
    return max(1, min(16, (os.cpu_count() or 2) - 1))


class _Chunks(torch.utils.data.Dataset):
    def __init__(self, make: Callable[[Sequence[Any]], Any], items: Sequence[Any], size: int):
        self.make, self.items, self.size = make, list(items), size

    def __len__(self) -> int:
        return (len(self.items) + self.size - 1) // self.size

    def __getitem__(self, i: int) -> Any:
        return self.make(self.items[i * self.size: (i + 1) * self.size])


def _to(x: Any, device: str, non_blocking: bool) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_to(t, device, non_blocking) for t in x)
    return x.to(device, non_blocking=non_blocking)


def device_batches(make: Callable[[Sequence[Any]], Any], items: Sequence[Any], batch_size: int,
                   device: str) -> Iterator[Any]:
    """`make(chunk)` for consecutive chunks of `batch_size` items, on `device`, in order."""
    if not str(device).startswith("cuda"):
        for i in range(0, len(items), batch_size):
            yield _to(make(items[i: i + batch_size]), device, False)
        return
    loader = torch.utils.data.DataLoader(_Chunks(make, items, batch_size), batch_size=None, shuffle=False,
                                         num_workers=loader_workers(), pin_memory=True, prefetch_factor=4,
                                         persistent_workers=False)
    for batch in loader:
        yield _to(batch, device, True)
