"""Where a transformers model's weights are, offline: a local folder, or a snapshot already in the Hugging Face
cache. Nothing is downloaded; a missing model is one line naming the repo id, the revision and where to put it.

The revision that identifies the weights (hashed into the run spec): the commit hash of a cache snapshot (its folder
name under ``snapshots/``), else a content fingerprint of the folder (`folder_fingerprint`).

>>> import tempfile
>>> d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
>>> resolve_weights(str(d), "main")[1].startswith("sha256:")
True
>>> resolve_weights("no-such-org/no-such-model", "main")
Traceback (most recent call last):
...
idcbench.errors.UserError: no-such-org/no-such-model (revision main): weights not found locally and nothing is downloaded at run time; put them into the Hugging Face cache with `hf download no-such-org/no-such-model --revision main` on a machine with network (cache: ...), or pass --config model=/path/to/the/model/folder
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from idcbench.errors import UserError

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FULL_HASH_BYTES = 64 << 20  # files up to this size are hashed whole; larger ones by size, head and tail
_EDGE_BYTES = 4 << 20


def folder_fingerprint(folder: Path) -> str:
    """``sha256:<hex>`` over every file's relative path and size, the full content of files up to 64 MiB, the first
    and last 4 MiB of larger ones (weights of billions of parameters fingerprint in well under a second)."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.relative_to(folder).parts):
        size = f.stat().st_size
        h.update(f"{f.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(f, "rb") as fh:
            if size <= _FULL_HASH_BYTES:
                h.update(fh.read())
            else:
                h.update(fh.read(_EDGE_BYTES))
                fh.seek(size - _EDGE_BYTES)
                h.update(fh.read(_EDGE_BYTES))
    return "sha256:" + h.hexdigest()


def local_revision(folder: Path) -> str:
    """The commit hash of a Hugging Face cache snapshot, else the folder's `folder_fingerprint`."""
    if folder.parent.name == "snapshots" and _COMMIT.match(folder.name):
        return folder.name
    return folder_fingerprint(folder)


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def missing_message(repo_id: str, revision: str) -> str:
    return (f"{repo_id} (revision {revision}): weights not found locally and nothing is downloaded at run time; "
            f"put them into the Hugging Face cache with `hf download {repo_id} --revision {revision}` on a machine "
            f"with network (cache: {_cache_dir()}), or pass --config model=/path/to/the/model/folder")


def resolve_weights(model: str, revision: str | None) -> tuple[Path, str]:
    """(folder, revision) of `model`: a local folder (revision: snapshot commit or fingerprint), or a Hugging Face repo
    id found in the local cache at `revision` (a branch, tag or commit; revision: the snapshot's commit)."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model={model}: {path} has no config.json; point it at a transformers model folder")
        return path.resolve(), local_revision(path.resolve())
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise UserError(f"model={model}: not a folder; pass a transformers model folder or a Hugging Face repo id")
    revision = revision or "main"
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, OSError):
        raise UserError(missing_message(model, revision)) from None
    if not (folder / "config.json").is_file():
        raise UserError(missing_message(model, revision).replace("not found locally", "incomplete in the cache"))
    return folder, folder.name
