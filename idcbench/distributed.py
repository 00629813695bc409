"""Rank and world size from torchrun or SLURM, the process group, strided shards, gathering and merging.

Under ``torchrun --nproc_per_node N -m idcbench run ...`` every process reads RANK / WORLD_SIZE / LOCAL_RANK; under
``srun`` it reads SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID (MASTER_ADDR and MASTER_PORT must then be set by the job
script). `init_process_group` picks gloo on CPU and NCCL on CUDA. Work is split into strided shards: rank r of n gets
items r, r + n, r + 2n, ... so that every shard is a sample of the whole split and the merge restores dataset order.

>>> shard(list("abcdefg"), 1, 3)
['b', 'e']
>>> merge_ordered([{"id": "b"}, {"id": "a"}], ["a", "b"])
[{'id': 'a'}, {'id': 'b'}]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from idcbench.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its global rank, the number of processes, its rank on the node, and the launcher."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = "none"  # "torchrun", "slurm" or "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise UserError(f"environment variable {name}={env[name]!r} is not an integer") from None


def dist_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """Read rank / world size from torchrun's variables, else SLURM's, else a single process.

    >>> dist_info({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    DistInfo(rank=1, world_size=2, local_rank=1, launcher='torchrun')
    >>> dist_info({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"}).rank
    3
    >>> dist_info({}).world_size
    1
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        info = DistInfo(_int_env(env, "RANK"), _int_env(env, "WORLD_SIZE"),
                        _int_env(env, "LOCAL_RANK") if "LOCAL_RANK" in env else 0, "torchrun")
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env and _int_env(env, "SLURM_NTASKS") > 1:
        info = DistInfo(_int_env(env, "SLURM_PROCID"), _int_env(env, "SLURM_NTASKS"),
                        _int_env(env, "SLURM_LOCALID") if "SLURM_LOCALID" in env else 0, "slurm")
    else:
        return DistInfo()
    if not 0 <= info.rank < info.world_size:
        raise UserError(f"rank {info.rank} is outside world size {info.world_size} (check the launcher's environment)")
    return info


def backend_for(device: str) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.startswith("cuda") else "gloo"


def init_process_group(info: DistInfo, device: str, *, timeout_s: float = 1800) -> bool:
    """Join the process group when running with several processes. Returns True when this call initialised it."""
    import torch.distributed as dist

    if not info.distributed or dist.is_initialized():
        return False
    if info.launcher == "slurm":
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise UserError(f"SLURM job with {info.world_size} tasks: set {' and '.join(missing)} in the job script "
                            "(e.g. MASTER_ADDR=$(scontrol show hostnames $SLURM_NODELIST | head -1), MASTER_PORT=29500)")
        os.environ.setdefault("RANK", str(info.rank))
        os.environ.setdefault("WORLD_SIZE", str(info.world_size))
        os.environ.setdefault("LOCAL_RANK", str(info.local_rank))
    backend = backend_for(device)
    if backend == "nccl":
        import torch

        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                            timeout=timedelta(seconds=timeout_s))
    return True


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True under torchrun with more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """Strided shard `index` of `count`: items index, index + count, ..."""
    if count < 1 or not 0 <= index < count:
        raise UserError(f"shard {index} of {count}: need 0 <= shard < num-shards")
    return list(items[index::count])


def merge_ordered(records: Iterable[Mapping[str, Any]], order: Sequence[str], *, where: str = "predictions",
                  key: str = "id") -> list[Mapping[str, Any]]:
    """Merge records from shards into `order`, checking that every id occurs exactly once and none is unknown.

    >>> merge_ordered([{"id": "a"}, {"id": "a"}], ["a"])
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: predictions: id 'a' occurs 2 times (expected exactly once)
    """
    by_id: dict[str, Mapping[str, Any]] = {}
    counts: dict[str, int] = {}
    for rec in records:
        k = rec[key]
        counts[k] = counts.get(k, 0) + 1
        by_id[k] = rec
    dupes = [k for k, c in counts.items() if c > 1]
    if dupes:
        raise UserError(f"{where}: id {dupes[0]!r} occurs {counts[dupes[0]]} times (expected exactly once)"
                        + (f"; {len(dupes) - 1} more duplicated ids" if len(dupes) > 1 else ""))
    known = set(order)
    unknown = [k for k in by_id if k not in known]
    if unknown:
        raise UserError(f"{where}: {len(unknown)} ids not in the split, e.g. {unknown[0]!r}")
    missing = [k for k in order if k not in by_id]
    if missing:
        raise UserError(f"{where}: {len(missing)} of {len(order)} ids missing, e.g. {missing[0]!r}")
    return [by_id[k] for k in order]
