"""All-gather with gradient for the stage-1 contrastive loss, and gradient averaging across processes.

Each rank computes the same global InfoNCE loss over the gathered batch; the backward of `gather_with_grad` sums the
incoming gradients over ranks and returns this rank's slice, so averaging parameter gradients across ranks gives
exactly the gradient of the global loss (the official CLIP4Clip `AllGather` only slices, which scales it by 1/world).

>>> x = torch.ones(2, 3, requires_grad=True)
>>> gather_with_grad(x) is x  # without torch.distributed: identity
True
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from idcbench.distributed import is_distributed


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
        sizes = [int(s.item()) for s in sizes]
        top = max(sizes)
        padded = torch.zeros((top, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start: start + ctx.sizes[ctx.rank]]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank (rank order), differentiably; identity when not distributed."""
    return _GatherWithGrad.apply(x) if is_distributed() else x


def average_gradients(params) -> None:
    """Mean of each parameter's gradient over ranks (what DDP does); no-op when not distributed."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)
