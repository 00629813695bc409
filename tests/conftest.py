"""Fixtures shared by several test files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shapes_data(tmp_path_factory) -> Path:
    """A data root (``IDCBENCH_DATA``) holding the default `shapes` dataset, exactly as `make demo` generates it;
    generated once per test session."""
    from idcbench.datasets import shapes

    root = tmp_path_factory.mktemp("data")
    shapes.synthesize(root / "shapes", workers=os.cpu_count() or 1)
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    small models run faster so on 2 shared cores, and their numbers are bit-stable per thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory) -> Path:
    """A tiny random Qwen2.5-VL folder (model, tokenizer, processor, chat template), built offline once a session."""
    from _tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-qwen2.5-vl")
