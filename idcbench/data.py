"""Pairs, examples, splits and datasets: the types every loader returns and every model reads.

An `Example` is one unit of evaluation: an id, the before and after image paths, its reference captions and tags
(e.g. ``{"kind": "semantic", "type": "color", "scene": "000002"}``). A `Dataset` is what a registered loader's
`load(root)` returns: its splits, examples per split and named subsets per split, each scored as its own corpus.

>>> ex = Example("000002.png", Path("b.png"), Path("a.png"), ("the cube changed to red",), {"kind": "semantic"})
>>> ex.kind
'semantic'
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from idcbench.errors import UserError
from idcbench.protocol import COCO, Protocol

# the change types of CLEVR-Change (and `shapes`): its type_mapping.json keys, the per-type subsets and table columns
CHANGE_TYPES: tuple[str, ...] = ("color", "material", "add", "drop", "move")


@dataclass(frozen=True)
class Pair:
    """Two images: before and after. Models caption pairs."""

    before: Path
    after: Path


@dataclass(frozen=True)
class Example:
    """One evaluation unit: id, before/after image paths, references and tags."""

    id: str
    before: Path
    after: Path
    references: tuple[str, ...]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def pair(self) -> Pair:
        return Pair(self.before, self.after)

    @property
    def kind(self) -> str | None:
        """``semantic`` / ``distractor`` for CLEVR-style data, else None."""
        return self.tags.get("kind")


@dataclass(frozen=True)
class DatasetInfo:
    """What a user needs to know to obtain and lay out a dataset."""

    name: str
    title: str
    citation: str
    source: str
    layout: str
    protocol: str = ""


class Dataset(ABC):
    """A loaded dataset: annotations indexed per split; pixels are read only when a model asks for them."""

    info: DatasetInfo
    # how the benchmark is scored and prompted (`idcbench.protocol`), the default first
    protocols: tuple[Protocol, ...] = (COCO,)

    def __init__(self, root: Path):
        self.root = Path(root)

    @abstractmethod
    def splits(self) -> list[str]:
        """Split names, e.g. ``["train", "val", "test"]``."""

    @abstractmethod
    def examples(self, split: str) -> list[Example]:
        """The examples of `split`, in a stable order."""

    def subsets(self, split: str) -> dict[str, list[str]]:
        """Named subsets of `split` (ids), each scored as a separate corpus. Always contains ``total``."""
        return {"total": [e.id for e in self.examples(split)]}

    def references(self, split: str) -> dict[str, list[str]]:
        """id -> reference captions; never needs the images."""
        return {e.id: list(e.references) for e in self.examples(split)}

    def check_split(self, split: str) -> None:
        if split not in self.splits():
            raise UserError(f"{self.info.name}: unknown split {split!r} (splits: {', '.join(self.splits())})")

    def id_key(self, example_id: str) -> str:
        """What an id means however other code spells it (`idcbench.ids.align_ids`): by default the id without
        an image-file extension, so ``"256.png"`` is pair ``256``."""
        from idcbench.ids import file_id_key

        return file_id_key(example_id)

    def fingerprint(self) -> str | None:
        """A hash of the annotation file(s) beyond ids and references, for the run spec's manifest (``pairs:PATH``:
        the file's sha256, so an edited image path makes a new run); None when ids and references say it all."""
        return None

    def location(self, example_id: str) -> str | None:
        """Where an example is written down (``file:line``), for problem reports; None when the format has no lines."""
        return None


def data_root(name: str, root: str | Path | None = None) -> Path:
    """Where dataset `name` lives: `root` if given, else ``$IDCBENCH_DATA/<name>``, else ``~/.cache/idcbench/data/<name>``.
    A name that carries its own path (``pairs:PATH``) resolves a relative PATH against `root`, else the current folder."""
    if root is not None:
        return Path(root).expanduser()
    from idcbench.registry import DATASETS

    if DATASETS.scheme_of(name) is not None:
        return Path.cwd()
    env = os.environ.get("IDCBENCH_DATA")
    if env:
        return Path(env).expanduser() / name
    return cache_dir() / "data" / name


def recorded_root(name: str, recorded: str | Path | None) -> tuple[Path | None, str]:
    """The data root a run recorded when it exists on this machine; else None (so `data_root` resolves it as usual:
    nothing is ever written into a path recorded elsewhere) and a sentence that says so.

    >>> recorded_root("shapes", "/no/such/machine/shapes")[0] is None
    True
    """
    if recorded is None or Path(recorded).expanduser().is_dir():
        return (None if recorded is None else Path(recorded).expanduser()), ""
    return None, (f"the data root recorded by the run ({recorded}) does not exist here; using {data_root(name)} "
                  "(pass --data-root to choose)")


def cache_dir() -> Path:
    """idcbench's cache (``$IDCBENCH_CACHE`` or ``~/.cache/idcbench``)."""
    return Path(os.environ.get("IDCBENCH_CACHE", Path.home() / ".cache" / "idcbench")).expanduser()


MAX_PIXELS_ENV = "IDCBENCH_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb limit (about 9,459 x 9,459)


def max_image_pixels() -> int | None:
    """The largest image (width x height) idcbench decodes: ``$IDCBENCH_MAX_IMAGE_PIXELS`` (0: no limit), else PIL's
    default guard against decompression bombs, 89,478,485 pixels.

    >>> os.environ[MAX_PIXELS_ENV] = "0"; max_image_pixels() is None
    True
    >>> del os.environ[MAX_PIXELS_ENV]; max_image_pixels()
    89478485
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit():
        raise UserError(f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r}: expected a number of pixels (0: no limit)")
    return int(raw) or None


def load_image(path: str | Path, *, example_id: str | None = None):
    """Open an image as RGB (PNG, JPEG, GIF first frame; RGBA and palette images converted): the one function
    through which idcbench reads an image file.

    Every failure is a `UserError` naming the example id and the path: a missing file, one that cannot be decoded, and
    one larger than `max_image_pixels` (checked on the header, before any pixel is decoded).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    where = f"example {example_id}: " if example_id else ""
    limit = max_image_pixels()
    # idcbench applies its own limit below, which the user can set: PIL's global guard would warn or raise first,
    # naming neither the file nor the setting.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as img:
            width, height = img.size
            if limit is not None and width * height > limit:
                raise UserError(f"{where}image {path} is {width} x {height} = {width * height:,} pixels, above the "
                                f"limit of {limit:,} (a guard against decompression bombs); if the file is genuine, "
                                f"raise it with {MAX_PIXELS_ENV}={width * height} (0: no limit)")
            img.seek(0)
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")  # PIL warns when a transparent palette image goes straight to RGB
            # Alpha is dropped, not composited: the same pixels as CLIP's own `convert("RGB")` preprocessing.
            return img.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{where}image not found: {path} (check --data-root; `idcbench data verify` lists all)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError,
            Image.DecompressionBombError) as e:
        raise UserError(f"{where}cannot decode image {path}: {e}") from None


def load_dataset(name: str, root: str | Path | None = None) -> Dataset:
    """Load a registered dataset by name from its data root.

    >>> load_dataset("no-such-dataset")
    Traceback (most recent call last):
    ...
    idcbench.errors.UserError: unknown dataset 'no-such-dataset' (known: ...)
    """
    from idcbench.registry import DATASETS

    loader = DATASETS.get(name)
    return loader.load(data_root(name, root))


def by_id(examples: Sequence[Example]) -> dict[str, Example]:
    return {e.id: e for e in examples}
