"""The registered `shapes` dataset: the synthetic CLEVR-Change-like data of `shapes.py`, generated on first use.

`load(root)` generates the dataset into `root` (by default ``$IDCBENCH_DATA/shapes`` or
``~/.cache/idcbench/data/shapes``) when it is absent or a stale cached copy, then reads it with the CLEVR-Change
loader: same ids, tags and subsets (including ``hard-iou``) as `clevr-change`.
"""

from __future__ import annotations

from pathlib import Path

from idcbench.data import DatasetInfo
from idcbench.errors import UserError
from idcbench.registry import DATASETS

import idcbench.datasets.shapes as shapes
from .clevr_change import LAYOUT, CLEVRChange


class Shapes(CLEVRChange):
    """Synthetic CLEVR-Change-like scenes (generated locally, small images): the demo's default dataset."""

    info = DatasetInfo(
        name="shapes",
        title="shapes (synthetic CLEVR-Change)",
        citation="idcbench's synthetic dataset; follows CLEVR-Change (Park, Darrell, Rohrbach, ICCV 2019).",
        source="generated locally, nothing to download: on first use into the data root, or with "
        "`idcbench data synth --out DIR --scenes N --size PX --seed S`",
        layout=LAYOUT,
        protocol=f"As CLEVR-Change: '%06d.png' (semantic) and '%06d.png_n' (distractor) per scene. Defaults: "
        f"{shapes.DEFAULT_SCENES} scenes, {shapes.DEFAULT_SIZE} px, seed {shapes.DEFAULT_SEED}, splits "
        f"{'/'.join(str(f) for f in shapes.DEFAULT_SPLITS)} (balanced over the five change types).",
    )

    @classmethod
    def load(cls, root: str | Path) -> "Shapes":
        """Generate the dataset into `root` if needed (with a progress bar on stderr), then open it."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        root = Path(root).expanduser()
        from idcbench.distributed import dist_info

        quiet = not dist_info().is_main  # under torchrun only rank 0 draws the bar (all ranks wait on one lock)
        with Progress(TextColumn("generating shapes"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=Console(stderr=True), transient=True, disable=quiet) as progress:
            task = progress.add_task("shapes", total=shapes.DEFAULT_SCENES)
            shapes.ensure_shapes(root, on_progress=lambda done, total: progress.update(task, completed=done, total=total))
        return super().load(root)

    @classmethod
    def open(cls, root: str | Path) -> "Shapes":
        """Open without generating (for `idcbench data info`)."""
        root = Path(root).expanduser()
        if not (root / "splits.json").is_file():
            raise UserError(f"shapes: not generated yet at {root}; it is generated on first use (e.g. `idcbench run "
                            f"... --dataset shapes`) or with `idcbench data synth --out {root}`")
        return super().load(root)


DATASETS.add("shapes", Shapes, description=Shapes.__doc__.strip().split("\n")[0])
