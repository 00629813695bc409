"""Random state: seeding before a model is built, and the torch RNG state a resumable fit saves and restores (a fit
killed and resumed draws the same numbers as one that ran through).

>>> import torch; seed_everything(3); a = torch.rand(1); state = rng_state(); b = torch.rand(1)
>>> set_rng_state(state); bool(torch.rand(1) == b)
True
"""

from __future__ import annotations

import random
from typing import Any


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (before building a model: random initialisation is part of the result)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """torch's CPU RNG state, and every CUDA device's when there are any."""
    import torch

    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
