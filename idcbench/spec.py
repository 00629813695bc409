"""The frozen description of a run, its stable hash, and where its directory lives.

A `RunSpec` holds everything that determines a run's predictions and scores: the model name and its fully resolved
config, the sha256 of an `--init` checkpoint, the dataset, split, protocol and a hash of the evaluated examples (ids and
references), the training data's hash when the model is trained, decoding settings, the seed and the limit. Its hash is
the sha256 of its canonical JSON; the run directory is ``runs/<dataset>/<model>/<hash[:16]>/``.

What does not change the result is not hashed: the world size (one process or many give the same predictions),
the batch size, the device, the data root's location. Those are recorded next to the spec in ``run_spec.json``.

>>> spec = RunSpec(model="m", config={"b": 1, "a": [1, 2]}, dataset="d", split="test", manifest="abc")
>>> spec.hash == RunSpec(model="m", config={"a": [1, 2], "b": 1}, dataset="d", split="test", manifest="abc").hash
True
>>> spec.run_dir("runs").parts[:3]
('runs', 'd', 'm')
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from idcbench.data import Dataset, Example
from idcbench.files import _jsonable

SPEC_VERSION = 2  # 2: the benchmark protocol is part of a run
HASH_CHARS = 16

# Config keys that are decoding settings; they are part of the config (hence hashed) and also listed on their own.
DECODING_KEYS = (
    "decoding", "beam_size", "num_beams", "max_len", "max_length", "max_words", "length_penalty",
    "temperature", "top_k", "top_p", "min_len", "repetition_penalty", "max_new_tokens", "min_new_tokens",
    "max_tokens",
)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal objects give equal strings (hash input)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_hash(examples: Sequence[Example]) -> str:
    """sha256 over the ids and references of `examples`, in order (what is scored; images are not read)."""
    return sha256_text(canonical_json([[e.id, list(e.references)] for e in examples]))


def dataset_manifest(dataset: Dataset, examples: Sequence[Example]) -> str:
    """The run spec's manifest: `manifest_hash`, combined with the dataset's `fingerprint` when it has one (the
    sha256 of a ``pairs:PATH`` file: an edited image path or tag is a different run)."""
    fingerprint = dataset.fingerprint()
    base = manifest_hash(examples)
    return base if fingerprint is None else sha256_text(canonical_json([base, fingerprint]))




@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result. Frozen; `hash` is stable across processes and machines."""

    model: str
    config: Mapping[str, Any]
    dataset: str
    split: str
    manifest: str
    protocol: str = "coco"  # how the dataset is scored (`idcbench.protocol`): runs of two protocols never compare
    checkpoint: str | None = None  # sha256 of --init (file or directory)
    train: bool = False
    train_manifest: str | None = None  # sha256 of the train + val examples when the model is trained
    decoding: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    limit: int | None = None
    version: int = SPEC_VERSION

    def to_dict(self) -> dict[str, Any]:
        # A JSON round trip turns tuples into lists and mapping proxies into dicts, so equal specs give equal dicts.
        return json.loads(canonical_json(asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def hash(self) -> str:
        """Full sha256 hex digest of the canonical JSON."""
        return sha256_text(canonical_json(self.to_dict()))

    @property
    def short_hash(self) -> str:
        return self.hash[:HASH_CHARS]

    def run_dir(self, runs_dir: str | Path = "runs") -> Path:
        """``<runs_dir>/<dataset>/<model>/<hash[:16]>``, each name made one safe folder name (`path_component`)."""
        return Path(runs_dir) / path_component(self.dataset) / path_component(self.model) / self.short_hash


def path_component(name: str) -> str:
    """`name` as one folder name: registered names stay as they are; a name that carries a path (``pairs:PATH``) or
    odd characters keeps its letters, digits, ``.``, ``-`` and ``_`` (the spec hash tells two such runs apart).

    >>> path_component("clevr-change"), path_component("pairs:../data/my pairs.jsonl"), path_component("..")
    ('clevr-change', 'pairs_.._data_my_pairs.jsonl', '_..')
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:120] or "_"
    return f"_{safe}" if set(safe) <= {"."} else safe


def decoding_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The decoding-related entries of a model config."""
    return {k: config[k] for k in DECODING_KEYS if k in config}
