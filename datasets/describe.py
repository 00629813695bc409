"""What `idcbench data info` and `idcbench data verify` compute: split summaries and image checks.

>>> from idcbench.datasets.spot_the_diff import SpotTheDiff
>>> describe(SpotTheDiff.info)["name"]
'spot-the-diff'
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from idcbench.data import Dataset, DatasetInfo, load_image
from idcbench.errors import UserError

from ._common import unique_images


def describe(info: DatasetInfo) -> dict:
    """The dataset's description as a dict (name, title, citation, source, layout, protocol)."""
    return asdict(info)


def summarize(dataset: Dataset) -> dict[str, dict]:
    """Per split: number of examples, of references (empty ones included, and counted apart) and subset sizes.

    Reads the annotations only, never an image.
    """
    splits = {}
    for split in dataset.splits():
        examples = dataset.examples(split)
        refs = [r for e in examples for r in e.references]
        splits[split] = {
            "examples": len(examples),
            "references": len(refs),
            "empty_references": sum(1 for r in refs if not r.strip()),
            "subsets": {name: len(ids) for name, ids in dataset.subsets(split).items()},
        }
    return splits


@dataclass(frozen=True)
class Problem:
    """An image the annotations reference that is missing or cannot be decoded."""

    split: str
    example_id: str
    path: Path
    reason: str  # "missing" | "corrupt"
    detail: str = ""
    where: str | None = None  # file:line of the example, for formats that have lines (pairs:PATH)

    def __str__(self) -> str:
        text = f"{self.split} {self.example_id}: {self.reason} {self.path}" + (f" ({self.detail})" if self.detail else "")
        return f"{self.where}: {text}" if self.where else text


@dataclass
class SplitCheck:
    examples: int
    images: int
    missing: int = 0
    corrupt: int = 0


@dataclass
class VerifyReport:
    splits: dict[str, SplitCheck] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_image(path: Path) -> tuple[str, str] | None:
    """None when `path` exists and decodes, else ("missing" | "corrupt", detail)."""
    if not path.is_file():
        return "missing", ""
    try:
        load_image(path)  # exactly what a model run does with the image
    except UserError as e:
        return "corrupt", str(e).replace(f"cannot decode image {path}: ", "")
    return None


def verify(
    dataset: Dataset,
    splits: Sequence[str] | None = None,
    *,
    workers: int = 4,
    on_split: Callable[[str, int], None] | None = None,
    on_image: Callable[[], None] | None = None,
) -> VerifyReport:
    """Check that every image the annotations of `splits` (default: all) reference exists and decodes.

    `on_split(split, n_images)` is called when a split starts and `on_image()` after each image (progress bars).
    Images are decoded in `workers` threads (PIL releases the GIL while decoding).
    """
    report = VerifyReport()
    for split in splits or dataset.splits():
        examples = dataset.examples(split)
        images = unique_images(examples)
        check = report.splits[split] = SplitCheck(examples=len(examples), images=len(images))
        if on_split:
            on_split(split, len(images))

        def run(item: tuple[Path, str]) -> tuple[Path, str, tuple[str, str] | None]:
            result = check_image(item[0])
            if on_image:
                on_image()
            return item[0], item[1], result

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for path, example_id, result in pool.map(run, images.items()):
                if result is None:
                    continue
                reason, detail = result
                setattr(check, reason, getattr(check, reason) + 1)
                report.problems.append(Problem(split, example_id, path, reason, detail, dataset.location(example_id)))
    return report
