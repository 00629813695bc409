"""A small `shapes` dataset for a test module's fixture."""

from __future__ import annotations

from pathlib import Path


def small_shapes(tmp_path_factory, scenes: int) -> Path:
    """`scenes` scenes of `shapes` (64 px, seed 0) in a fresh folder of `tmp_path_factory`; returns the dataset root."""
    from idcbench.datasets import shapes

    return shapes.synthesize(tmp_path_factory.mktemp("shapes") / "shapes", scenes=scenes, size=64, seed=0,
                             overwrite=True, workers=1)
